# Version constraints for the whole module, including the generated chalice.tf.json
# (make package removes the generated file's own, outdated pins). Terraform 1.10 brings the S3
# backend's native locking (use_lockfile, see backend.tf.example); the provider's exact version
# and hashes are in .terraform.lock.hcl.
terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 6.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      app   = var.app_name
      stage = var.stage
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  # The prefix of every resource name; chalice.tf.json spells it "${var.app_name}-${var.stage}".
  name = "${var.app_name}-${var.stage}"
}
