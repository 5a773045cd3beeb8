# API URL and example IAM policies for its callers (every route requires SigV4).
locals {
  api_routes = "${aws_api_gateway_rest_api.rest_api.execution_arn}/${aws_api_gateway_stage.rest_api.stage_name}"
}

data "aws_iam_policy_document" "api_reader" {
  statement {
    sid       = "ReadCertificates"
    actions   = ["execute-api:Invoke"]
    resources = ["${local.api_routes}/GET/*"]
  }

  statement {
    sid     = "NoPrivateKeys"
    effect  = "Deny"
    actions = ["execute-api:Invoke"]
    resources = [
      "${local.api_routes}/GET/certificates/*/private-key",
      "${local.api_routes}/GET/certificates/*/bundle",
    ]
  }
}

data "aws_iam_policy_document" "api_device_provisioner" {
  statement {
    sid       = "IssueDeviceCertificates"
    actions   = ["execute-api:Invoke"]
    resources = ["${local.api_routes}/POST/certificates/device"]
  }

  statement {
    sid     = "RenewDeviceCertificates"
    actions = ["execute-api:Invoke"]
    resources = length(var.device_ca_fqdns) == 0 ? ["${local.api_routes}/POST/certificates/*/renew"] : [
      for fqdn in var.device_ca_fqdns : "${local.api_routes}/POST/certificates/*.${fqdn}/renew"
    ]
  }
}

data "aws_iam_policy_document" "api_pki_admin" {
  statement {
    sid       = "ManageThePki"
    actions   = ["execute-api:Invoke"]
    resources = ["${local.api_routes}/GET/*", "${local.api_routes}/POST/*"]
  }
}

output "api_url" {
  description = "Base URL of the API; sign requests with SigV4 (service execute-api)."
  value       = aws_api_gateway_stage.rest_api.invoke_url
}

output "certificate_bucket" {
  value = aws_s3_bucket.certificates.bucket
}

output "inventory_table" {
  value = aws_dynamodb_table.inventory.name
}

output "event_bus" {
  value = aws_cloudwatch_event_bus.certificates.name
}

output "inventory_dead_letter_queue_url" {
  description = "Inventory events that could not be recorded (README: draining the dead-letter queue)."
  value       = aws_sqs_queue.inventory_dead_letters.url
}

output "iot_device_policy" {
  description = "The AWS IoT policy attached to every device this stack registers or provisions."
  value       = local.iot_device_policy_name
}

output "iot_provisioning_role_arn" {
  description = "The role AWS IoT assumes to provision this stack's devices just in time."
  value       = aws_iam_role.iot_provisioning.arn
}

output "kms_key_arn" {
  value = aws_kms_key.certificates.arn
}

output "function_names" {
  value = local.function_names
}

output "api_reader_policy" {
  description = "IAM policy for callers who may only read certificates and their history (no private keys)."
  value       = data.aws_iam_policy_document.api_reader.json
}

output "api_device_provisioner_policy" {
  description = "IAM policy for provisioning scripts: issue devices, and renew those under device_ca_fqdns."
  value       = data.aws_iam_policy_document.api_device_provisioner.json
}

output "api_pki_admin_policy" {
  description = "IAM policy for PKI administrators: every route."
  value       = data.aws_iam_policy_document.api_pki_admin.json
}
