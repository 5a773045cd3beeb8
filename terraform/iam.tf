# The role of both Lambda functions (Chalice's own IAM generation is off in the dev stage).
# Only the actions the code calls, on only this stack's resources.
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
  name               = "${var.app_name}-${var.stage}-lambda"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.functions : "${group.arn}:*"]
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

  statement {
    sid       = "UseTheKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.certificates.arn]
  }

  statement {
    sid       = "Inventory"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.inventory.arn, "${aws_dynamodb_table.inventory.arn}/index/parent-index"]
  }

  statement {
    sid       = "PublishEvents"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.certificates.arn]
  }

  statement {
    sid     = "ImportServerCertificates"
    actions = ["acm:ImportCertificate", "acm:AddTagsToCertificate"]
    resources = [
      "arn:${data.aws_partition.current.partition}:acm:${var.region}:${data.aws_caller_identity.current.account_id}:certificate/*",
    ]
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "${var.app_name}-${var.stage}-lambda"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}
