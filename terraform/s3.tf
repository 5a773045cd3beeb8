# certificates/<fqdn>.json: one object per certificate, written once (If-None-Match: *).
resource "aws_s3_bucket" "certificates" {
  bucket_prefix = "${local.name}-certs-"
  force_destroy = var.allow_teardown

  # Destroyed before the key, never after: while the bucket still holds objects (and refuses to
  # be deleted), the key they are encrypted under is not scheduled for deletion.
  depends_on = [aws_kms_key.certificates]
}

resource "aws_s3_bucket_versioning" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  versioning_configuration {
    status = "Enabled"
  }
}

# A deleted certificate (DELETE /certificates/{fqdn}) leaves its documents' last versions behind
# delete markers: they expire after deleted_version_days, and then the markers. Nothing else
# makes a noncurrent version: documents are written once and revocations never deleted.
resource "aws_s3_bucket_lifecycle_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  rule {
    id     = "expire-deleted-certificates"
    status = "Enabled"

    filter {
      prefix = "certificates/"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.deleted_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  # The service never uploads in parts; should anything, an unfinished upload goes after a day.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.certificates]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.certificates.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "certificates" {
  bucket                  = aws_s3_bucket.certificates.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "certificates" {
  bucket = aws_s3_bucket.certificates.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "certificates_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject"]
    resources = [aws_s3_bucket.certificates.arn, "${aws_s3_bucket.certificates.arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "certificates" {
  bucket     = aws_s3_bucket.certificates.id
  policy     = data.aws_iam_policy_document.certificates_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.certificates]
}
