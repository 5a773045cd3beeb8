# One customer managed key encrypts certificates and keys in S3 and the inventory table.
resource "aws_kms_key" "certificates" {
  description             = "${var.app_name}-${var.stage}: certificates, private keys and inventory"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_kms_alias" "certificates" {
  name          = "alias/${var.app_name}-${var.stage}"
  target_key_id = aws_kms_key.certificates.key_id
}
