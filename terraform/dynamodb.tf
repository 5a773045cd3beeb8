# The inventory: one item per certificate, listed by parent through the parent index.
locals {
  inventory_index = "parent-index"
}

resource "aws_dynamodb_table" "inventory" {
  name                        = "${local.name}-inventory"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "FQDN"
  range_key                   = "ParentFQDN"
  deletion_protection_enabled = !var.allow_teardown

  attribute {
    name = "FQDN"
    type = "S"
  }

  attribute {
    name = "ParentFQDN"
    type = "S"
  }

  global_secondary_index {
    name            = local.inventory_index
    hash_key        = "ParentFQDN"
    range_key       = "FQDN"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.certificates.arn
  }
}
