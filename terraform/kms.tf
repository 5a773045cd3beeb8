# One customer managed key encrypts certificates and keys in S3 and the inventory table.
#
# Its policy is the whole truth about who can use it (no statement delegates to IAM policies):
# - the administrators (kms_admin_arns, default the account root) manage the key but hold no
#   cryptographic permission, so no administrator can decrypt a certificate document;
# - only the API function's role may decrypt and generate data keys, and only through S3: with
#   the cascade function's role, which decrypts only (it reads CA documents for their
#   generations), and with purge_expired_after_days the expiry scan's (it reads the devices it
#   purges), it is the one principal that can read the documents holding CA and leaf
#   private keys, unless key_reader_arns names others (none by default);
# - through DynamoDB only, the two function roles (which read and write the inventory), the
#   administrators (who create the table) and the readers may use the key as DynamoDB requires;
#   the inventory holds certificate metadata, never a key;
# - with alarm_email, CloudWatch may encrypt and decrypt the alarm topic's messages (alarms.tf) for
#   this stage's alarms: the encryption context names that topic, so no other data.
locals {
  kms_arn_prefix = "arn:${data.aws_partition.current.partition}:kms:${var.region}:${data.aws_caller_identity.current.account_id}"
  kms_admins = length(var.kms_admin_arns) > 0 ? var.kms_admin_arns : [
    "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root",
  ]
}

data "aws_iam_policy_document" "key" {
  # A key policy's Resource "*" means "this key" (its only possible value): see checkov.yaml.
  #checkov:skip=CKV_AWS_109:Resource "*" in a key policy is the key itself
  #checkov:skip=CKV_AWS_111:Resource "*" in a key policy is the key itself
  #checkov:skip=CKV_AWS_356:Resource "*" in a key policy is the key itself
  statement {
    sid = "AdministerTheKeyWithoutUsingIt"
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListAliases",
      "kms:ListGrants",
      "kms:ListKeyPolicies",
      "kms:ListKeyRotations",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:RevokeGrant",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = local.kms_admins
    }
  }

  statement {
    sid       = "CertificateDocumentsThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = concat([aws_iam_role.lambda.arn], var.key_reader_arns)
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "CaDocumentsForTheRevocationCascade"
    actions   = ["kms:Decrypt"]
    resources = ["*"]

    principals {
      type = "AWS"
      # with purge_expired_after_days, the expiry scan too: it reads each long-expired device
      identifiers = concat(
        [aws_iam_role.cascade.arn],
        var.purge_expired_after_days > 0 ? [aws_iam_role.expiry.arn] : [],
      )
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "InventoryThroughDynamoDB"
    actions = [
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]

    principals {
      type = "AWS"
      identifiers = distinct(concat(
        [aws_iam_role.lambda.arn, aws_iam_role.inventory.arn, aws_iam_role.cascade.arn, aws_iam_role.expiry.arn],
        local.kms_admins, var.key_reader_arns,
      ))
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = var.alarm_email == "" ? [] : [local.alarm_topic_arn]

    content {
      sid       = "AlarmNotificationsThroughSns"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["cloudwatch.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:aws:sns:topicArn"
        values   = [statement.value]
      }

      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = [local.alarm_source_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = var.expiry_notice_email == "" ? [] : [local.expiry_topic_arn]

    content {
      sid       = "ExpiryNoticesThroughSns"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:aws:sns:topicArn"
        values   = [statement.value]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [local.expiry_rule_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }

  statement {
    sid       = "DynamoDBWatchesTheKey"
    actions   = ["kms:DescribeKey", "kms:ListGrants"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["dynamodb.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "certificates" {
  description             = "${local.name}: certificates, private keys and inventory"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "certificates" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.certificates.key_id
}
