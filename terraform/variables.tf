variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-central-1"
}

# Every resource name is "<app_name>-<stage>...", so the tightest AWS limit bounds both together:
# the S3 bucket_prefix "<app_name>-<stage>-certs-" (37 characters), then the Lambda function and
# event rule "<app_name>-<stage>-revocation_cascade" (64), then the IAM role
# "<app_name>-<stage>-inventory" (64). They are checked here, before any AWS call.
variable "app_name" {
  description = "Application name; the first part of every resource name."
  type        = string
  default     = "iot-cert-service"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]*[a-z0-9])?$", var.app_name))
    error_message = "app_name: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen (the characters S3 bucket names allow, and every other name accepts)."
  }
}

variable "stage" {
  description = "Stage name, e.g. your user name: the second part of every resource name, so that stages share an account. It must be the name of the selected workspace (the default workspace is dev's)."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]*[a-z0-9])?$", var.stage))
    error_message = "stage: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen (the characters S3 bucket names allow, and every other name accepts)."
  }

  validation {
    condition     = length("${var.app_name}-${var.stage}-certs-") <= 37
    error_message = "stage: the S3 bucket_prefix \"${var.app_name}-${var.stage}-certs-\" has ${length("${var.app_name}-${var.stage}-certs-")} characters; S3 allows at most 37 for a bucket_prefix, so app_name and stage together may have at most 29 characters."
  }

  validation {
    condition     = length("${var.app_name}-${var.stage}-revocation_cascade") <= 64
    error_message = "stage: the Lambda function and event rule name \"${var.app_name}-${var.stage}-revocation_cascade\" has ${length("${var.app_name}-${var.stage}-revocation_cascade")} characters; AWS Lambda and EventBridge allow at most 64."
  }

  validation {
    condition     = length("${var.app_name}-${var.stage}-inventory") <= 64
    error_message = "stage: the IAM role name \"${var.app_name}-${var.stage}-inventory\" has ${length("${var.app_name}-${var.stage}-inventory")} characters; IAM allows at most 64."
  }

  # One state per stage: the workspace named after it (the default workspace stands for dev), so
  # that with a shared backend two stages never share, and overwrite, one state.
  validation {
    condition     = var.stage == (terraform.workspace == "default" ? "dev" : terraform.workspace)
    error_message = "stage: \"${var.stage}\" is not the selected workspace \"${terraform.workspace}\". Each stage keeps its state in the workspace of its name (the default workspace is dev's): run `terraform workspace select -or-create ${var.stage}`."
  }
}

variable "api_endpoint_type" {
  description = "API Gateway endpoint type: REGIONAL (callers in or near the region: CI, test rigs, the dev account's own compute) or EDGE (through CloudFront, for callers far from the region)."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "EDGE"], var.api_endpoint_type)
    error_message = "api_endpoint_type: REGIONAL or EDGE (a PRIVATE API needs a VPC endpoint and a resource policy, which this stack does not create)."
  }
}

variable "log_retention_days" {
  description = "How long the functions' CloudWatch logs are kept."
  type        = number
  default     = 365
}

variable "kms_admin_arns" {
  description = "IAM principals that administer the stack's KMS key (policy, rotation, deletion) and let DynamoDB use it for the tables they create; none of them may decrypt certificate documents. Empty means the account root, i.e. IAM principals of this account whose own policies allow those actions. Include whoever runs terraform."
  type        = list(string)
  default     = []
}

variable "key_reader_arns" {
  description = "IAM principals besides the API function that may decrypt certificate documents through S3, and so read every CA and leaf key: e.g. an operator role that runs make reconcile or make fsck against the stage. None by default."
  type        = list(string)
  default     = []
}

variable "public_base_url" {
  description = "Where relying parties fetch CRLs: a URL under which /certificates/<ca>/crl is served, such as the API's own URL (output api_url, known after the first apply: the CRL route needs no credentials) or a custom domain in front of it. When set, every certificate issued from then on names its issuer's CRL there (CRL Distribution Point); empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.public_base_url == "" || can(regex("^https?://[^?#\\s]+$", var.public_base_url))
    error_message = "public_base_url: an http(s) URL without query or fragment, e.g. https://pki.example.net, or empty."
  }
}

variable "device_ca_fqdns" {
  description = "The device CAs (cells) whose devices the example device-provisioner policy may renew: it may then POST .../renew for names under them only. Empty: it may renew any certificate, CAs included (the policy is an example to tighten)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for fqdn in var.device_ca_fqdns : can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", fqdn))])
    error_message = "device_ca_fqdns: lower-case FQDNs of CAs, e.g. cell1.devices.example.com."
  }
}

variable "manage_iot_device_policy" {
  description = "Create the AWS IoT device policy <app_name>-<stage>-devices (iot.tf). False only where AWS IoT policies cannot be managed, such as a moto server, which lacks IoT's ListTagsForResource; devices registered then need a policy of that name made otherwise."
  type        = bool
  default     = true
}

variable "alarm_actions" {
  description = "More ARNs (e.g. SNS topics) that every alarm notifies, besides alarm_topic_arn and alarm_email's topic."
  type        = list(string)
  default     = []
}

variable "alarm_topic_arn" {
  description = "An existing SNS topic that every alarm notifies when it goes off and when it clears (e.g. a team's on-call topic; if the topic is encrypted, its key must let cloudwatch.amazonaws.com use it). Empty or null: none."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.alarm_topic_arn == "" || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn: the ARN of a standard SNS topic, arn:aws:sns:<region>:<account>:<name>, or empty."
  }
}

variable "alarm_email" {
  description = "An email address that every alarm notifies: the stack creates the SNS topic <app_name>-<stage>-alarms, encrypted with the stack's key, and subscribes the address (AWS first mails it a link to confirm; nothing is delivered until it is followed). Empty or null: none."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email: an email address such as oncall@example.com, or empty."
  }
}

variable "allow_teardown" {
  description = "Set to true and apply, lift the teardown lock (terraform state rm terraform_data.teardown_lock), then destroy: only then may terraform destroy delete the certificate bucket (with every certificate and key in it), the inventory table and the KMS key."
  type        = bool
  default     = false
}

variable "portal" {
  description = "Deploy the browser portal (README, Portal): a Cognito user pool and identity pool whose signed-in users get the PKI administrator's API permissions, and the portal's two GET methods (/portal, /portal/{asset}) open without SigV4. False: none of it, and every route requires SigV4."
  type        = bool
  default     = false
}

variable "expiry_notice_days" {
  description = "The daily expiry scan's window: an `expiring` event (source certificates) each day for every active certificate that ends within this many days."
  type        = number
  default     = 30

  validation {
    condition     = var.expiry_notice_days >= 0 && var.expiry_notice_days <= 36500 && floor(var.expiry_notice_days) == var.expiry_notice_days
    error_message = "expiry_notice_days: a whole number of days from 0 to 36500."
  }
}

variable "deleted_version_days" {
  description = "How long the versions of a deleted certificate's documents (its private key with them) stay in the bucket behind their delete markers before S3 expires them."
  type        = number
  default     = 30

  validation {
    condition     = var.deleted_version_days >= 1 && var.deleted_version_days <= 3650 && floor(var.deleted_version_days) == var.deleted_version_days
    error_message = "deleted_version_days: a whole number of days from 1 to 3650."
  }
}

variable "purge_expired_after_days" {
  description = "The daily expiry scan also deletes each device certificate expired longer than this many days (and a day), like Vault's tidy; such a device is no longer renewed. 0: never (and the scan's role may not read or delete certificates)."
  type        = number
  default     = 0

  validation {
    condition     = var.purge_expired_after_days >= 0 && var.purge_expired_after_days <= 36500 && floor(var.purge_expired_after_days) == var.purge_expired_after_days
    error_message = "purge_expired_after_days: a whole number of days from 0 (never) to 36500."
  }
}

variable "expiry_notice_email" {
  description = "An e-mail address that a topic made here sends each `expiring` event to (AWS mails it a confirmation link first); empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.expiry_notice_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.expiry_notice_email))
    error_message = "expiry_notice_email: an email address such as pki-team@example.com, or empty."
  }
}

variable "expiry_notice_topic_arn" {
  description = "An existing SNS topic that each `expiring` event is sent to (its policy must let events.amazonaws.com publish); empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.expiry_notice_topic_arn == "" || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.expiry_notice_topic_arn))
    error_message = "expiry_notice_topic_arn: the ARN of a standard SNS topic, arn:aws:sns:<region>:<account>:<name>, or empty."
  }
}
