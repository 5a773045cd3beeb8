# The inventory: one item per certificate, listed by parent through the parent index, and the
# active ones by NotAfter through the expiry index: sparse, as only active items carry its key
# (`Expiring`, removed when an item is revoked), so the fleet-wide expiry query reads nothing
# else (chalicelib/adapters/aws/inventory.py).
locals {
  inventory_index = "parent-index"
  expiry_index    = "expiry-index"
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

  attribute {
    name = "Expiring"
    type = "S"
  }

  attribute {
    name = "NotAfter"
    type = "S"
  }

  global_secondary_index {
    name            = local.inventory_index
    hash_key        = "ParentFQDN"
    range_key       = "FQDN"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = local.expiry_index
    hash_key        = "Expiring"
    range_key       = "NotAfter"
    projection_type = "ALL"
  }

  # A deleted certificate's item stays as a tombstone (Status "deleted") for 30 days, so that
  # no late event revives it; DynamoDB removes it at its ExpiresAt.
  ttl {
    attribute_name = "ExpiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.certificates.arn
  }
}
