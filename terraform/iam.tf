# One role per function (Chalice's own IAM generation is off; make package assigns the roles).
# Each lists only the actions its function's code calls, on only this stack's resources:
# - the API function (aws_iam_role.lambda) reads and writes certificate documents in S3, reads
#   inventory items by key (GetItem: a server certificate's ACM ARN) and lists them through the
#   parent index (Query), publishes events, imports server certificates into ACM and registers
#   CAs and devices with AWS IoT, tagging what can be tagged with its stage;
# - the inventory function (aws_iam_role.inventory) only records events: PutItem for `created`,
#   UpdateItem for `renewed` and `revoked` (GetItem when a replayed `renewed` finds nothing to
#   move), and marks a revocation in AWS IoT; it never reads a certificate document. A failed
#   event goes to the dead-letter queue;
# - the expiry scan (aws_iam_role.expiry), daily, lists what expires through the expiry index,
#   notes each notice's day on its item and announces the `expiring` events;
# - the cascade function (aws_iam_role.cascade) carries a CA's revocation to every certificate
#   AWS IoT registered below it: it reads the CAs' documents for their generations, lists their
#   children through the parent index, lists and revokes certificates in AWS IoT, and hands what
#   one invocation could not finish to the next through the bus.
# KMS use is granted by the key's policy (kms.tf), which names these roles.
# tests/e2e/test_iam_coverage.py checks each role against every call its function makes.
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${local.name}-api"
  description        = "${local.name}: the API function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role" "inventory" {
  name               = "${local.name}-inventory"
  description        = "${local.name}: the inventory event handler"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role" "expiry" {
  name               = "${local.name}-expiry"
  description        = "${local.name}: the daily expiry scan"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role" "cascade" {
  name               = "${local.name}-cascade"
  description        = "${local.name}: a CA's revocation carried to AWS IoT"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "api" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.functions["api_handler"].arn}:*"]
  }

  statement {
    sid     = "CertificateAndRevocationObjects"
    actions = ["s3:GetObject", "s3:PutObject"]
    resources = [
      "${aws_s3_bucket.certificates.arn}/certificates/*",
      "${aws_s3_bucket.certificates.arn}/revocations/*",
    ]
  }

  statement {
    sid       = "ListCertificates"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.certificates.arn]
  }

  # DELETE /certificates/{fqdn} of a revoked certificate: its documents (a delete marker; the
  # bucket's lifecycle rule expires the versions behind it), never a revocation.
  statement {
    sid       = "DeleteRevokedCertificates"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.certificates.arn}/certificates/*"]
  }

  # ... and their inventory items, each turned into a tombstone that late events cannot revive.
  statement {
    sid       = "TombstoneDeletedItems"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.inventory.arn]
  }

  statement {
    sid       = "EncryptedObjects"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.certificates.arn]
  }

  statement {
    sid       = "ReadInventoryItems"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.inventory.arn]
  }

  statement {
    sid     = "ListChildrenAndWhatExpires"
    actions = ["dynamodb:Query"]
    resources = [
      "${aws_dynamodb_table.inventory.arn}/index/${local.inventory_index}",
      "${aws_dynamodb_table.inventory.arn}/index/${local.expiry_index}",
    ]
  }

  statement {
    sid       = "PublishEvents"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.certificates.arn]
  }

  # An import is tagged with its FQDN and its owner, this stage (chalicelib/ownership.py), by
  # which `make teardown-aws` finds it: tags in a request may name no other stage or app (a
  # re-import and GetCertificate carry none).
  statement {
    sid     = "ImportServerCertificates"
    actions = ["acm:ImportCertificate", "acm:AddTagsToCertificate", "acm:GetCertificate"]
    resources = [
      "arn:${data.aws_partition.current.partition}:acm:${var.region}:${data.aws_caller_identity.current.account_id}:certificate/*",
    ]

    condition {
      test     = "StringEqualsIfExists"
      variable = "aws:RequestTag/app"
      values   = [var.app_name]
    }

    condition {
      test     = "StringEqualsIfExists"
      variable = "aws:RequestTag/stage"
      values   = [var.stage]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["fqdn", "app", "stage"]
    }
  }

  # The first renewal of a server certificate whose `created` event (which carries its ARN to the
  # inventory) is still on its way finds the ARN by fingerprint. ListCertificates has no
  # resource-level permissions: "*" is the only resource it takes.
  statement {
    sid       = "FindImportedCertificates"
    actions   = ["acm:ListCertificates"]
    resources = ["*"]
  }

  # These take no resource-level permission ("*" is the only resource they accept); the
  # certificates' IDs are AWS IoT's to pick.
  statement {
    sid = "RegisterWithAwsIot"
    actions = [
      "iot:GetRegistrationCode", "iot:RegisterCACertificate", "iot:DescribeEndpoint",
      "iot:RegisterCertificate", "iot:AttachThingPrincipal",
    ]
    resources = ["*"]
  }

  # RegisterCACertificate's tags (the CA's owner, which `make teardown-aws` finds it by) need
  # iot:TagResource too; they must name this stage and app, and nothing else.
  statement {
    sid       = "TagCasWithTheirStage"
    actions   = ["iot:TagResource"]
    resources = ["${local.iot_arn_prefix}:cacert/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/app"
      values   = [var.app_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/stage"
      values   = [var.stage]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["app", "stage"]
    }
  }

  statement {
    sid       = "AttachTheDevicePolicy"
    actions   = ["iot:AttachPolicy"]
    resources = ["${local.iot_arn_prefix}:cert/*"]
  }

  statement {
    sid       = "CreateThings"
    actions   = ["iot:CreateThing"]
    resources = ["${local.iot_arn_prefix}:thing/*"]
  }

  statement {
    sid       = "HandTheProvisioningRoleToAwsIot"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.iot_provisioning.arn]

    # To AWS IoT only (RegisterCACertificate's registrationConfig), never to another service.
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["iot.amazonaws.com"]
    }
  }

  # A CA's key in AWS KMS (key_store kms; chalicelib/adapters/aws/kms.py): made with this stage's
  # tags and for signing only. CreateKey takes no resource-level permission ("*" is the only
  # resource it accepts); the tags it is created with need kms:TagResource as well.
  statement {
    sid       = "MakeCaKeysForTheStage"
    actions   = ["kms:CreateKey"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/app"
      values   = [var.app_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/stage"
      values   = [var.stage]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["app", "stage", "ca"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:KeyUsage"
      values   = ["SIGN_VERIFY"]
    }
  }

  statement {
    sid       = "TagCaKeysWithTheirStage"
    actions   = ["kms:TagResource"]
    resources = ["${local.kms_arn_prefix}:key/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/app"
      values   = [var.app_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/stage"
      values   = [var.stage]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["app", "stage", "ca"]
    }
  }

  # An alias names the key under this stage's prefix: CreateAlias is checked on the alias and
  # on the key.
  statement {
    sid       = "AliasCaKeysUnderTheStage"
    actions   = ["kms:CreateAlias"]
    resources = ["${local.kms_arn_prefix}:alias/${var.app_name}/${var.stage}/*"]
  }

  # Only keys that carry this stage's tags: signing (each key's policy also names this role
  # alone), and the deletion of a key whose CA was refused before it was stored.
  statement {
    sid       = "UseTheStagesCaKeys"
    actions   = ["kms:CreateAlias", "kms:Sign", "kms:GetPublicKey", "kms:ScheduleKeyDeletion"]
    resources = ["${local.kms_arn_prefix}:key/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/app"
      values   = [var.app_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/stage"
      values   = [var.stage]
    }
  }
}

resource "aws_iam_role_policy" "api" {
  name   = "${local.name}-api"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.api.json
}

data "aws_iam_policy_document" "inventory" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.functions["record_inventory"].arn}:*"]
  }

  statement {
    sid       = "RecordEvents"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.inventory.arn]
  }

  statement {
    sid       = "MarkRevocationsInAwsIot"
    actions   = ["iot:UpdateCertificate", "iot:UpdateCACertificate"]
    resources = ["${local.iot_arn_prefix}:cert/*", "${local.iot_arn_prefix}:cacert/*"]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.inventory_dead_letters.arn]
  }
}

resource "aws_iam_role_policy" "inventory" {
  name   = "${local.name}-inventory"
  role   = aws_iam_role.inventory.id
  policy = data.aws_iam_policy_document.inventory.json
}

data "aws_iam_policy_document" "cascade" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.functions["revocation_cascade"].arn}:*"]
  }

  statement {
    sid       = "ReadCaGenerations"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.certificates.arn}/certificates/*"]
  }

  statement {
    sid       = "DecryptedThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.certificates.arn]
  }

  statement {
    sid       = "ListGenerations"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.certificates.arn]
  }

  statement {
    sid       = "ListChildren"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.inventory.arn}/index/${local.inventory_index}"]
  }

  # ListCertificatesByCA takes no resource-level permission ("*" is the only resource).
  statement {
    sid       = "FindCertificatesRegisteredUnderACa"
    actions   = ["iot:ListCertificatesByCA"]
    resources = ["*"]
  }

  statement {
    sid       = "RevokeThemInAwsIot"
    actions   = ["iot:UpdateCertificate", "iot:UpdateCACertificate"]
    resources = ["${local.iot_arn_prefix}:cert/*", "${local.iot_arn_prefix}:cacert/*"]
  }

  # A deletion's removal from AWS IoT: each device certificate with its policy and things, then
  # its CA (chalicelib/cascade.py IotRemoval).
  statement {
    sid = "RemoveDeletedCertificatesFromAwsIot"
    actions = [
      "iot:DescribeCertificate", "iot:DetachPolicy", "iot:DeleteCertificate",
      "iot:DeleteCACertificate",
    ]
    resources = ["${local.iot_arn_prefix}:cert/*", "${local.iot_arn_prefix}:cacert/*"]
  }

  # ListPrincipalThings takes no resource-level permission ("*" is the only resource).
  statement {
    sid       = "FindTheirThings"
    actions   = ["iot:ListPrincipalThings"]
    resources = ["*"]
  }

  # Things take no tags: a thing is deleted only when its attributes name this app and stage
  # (read with DescribeThing first); another's thing is only detached.
  statement {
    sid       = "DetachAndRemoveTheirThings"
    actions   = ["iot:DetachThingPrincipal", "iot:DescribeThing", "iot:DeleteThing"]
    resources = ["${local.iot_arn_prefix}:thing/*"]
  }

  statement {
    sid       = "HandTheRestOn"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.certificates.arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.inventory_dead_letters.arn]
  }
}

resource "aws_iam_role_policy" "cascade" {
  name   = "${local.name}-cascade"
  role   = aws_iam_role.cascade.id
  policy = data.aws_iam_policy_document.cascade.json
}

data "aws_iam_policy_document" "expiry" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.functions["scan_expiring"].arn}:*"]
  }

  statement {
    sid       = "ListWhatExpires"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.inventory.arn}/index/${local.expiry_index}"]
  }

  # The day of each certificate's notice, noted (conditionally) before the notice is sent.
  statement {
    sid       = "NoteEachNotice"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.inventory.arn]
  }

  statement {
    sid       = "AnnounceExpiringCertificates"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.certificates.arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.inventory_dead_letters.arn]
  }
}

resource "aws_iam_role_policy" "expiry" {
  name   = "${local.name}-expiry"
  role   = aws_iam_role.expiry.id
  policy = data.aws_iam_policy_document.expiry.json
}

# Only with purge_expired_after_days: the scan reads each long-expired device (its current
# generation, so that a lagging inventory never purges a renewed one), deletes its documents and
# tombstones its item (UpdateItem, granted above).
data "aws_iam_policy_document" "expiry_purge" {
  statement {
    sid       = "ReadExpiredDevices"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.certificates.arn}/certificates/*"]
  }

  statement {
    sid       = "DecryptedThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.certificates.arn]
  }

  statement {
    sid       = "ListTheirGenerations"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.certificates.arn]
  }

  statement {
    sid       = "DeleteThem"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.certificates.arn}/certificates/*"]
  }
}

resource "aws_iam_role_policy" "expiry_purge" {
  count  = var.purge_expired_after_days > 0 ? 1 : 0
  name   = "${local.name}-expiry-purge"
  role   = aws_iam_role.expiry.id
  policy = data.aws_iam_policy_document.expiry_purge.json
}
