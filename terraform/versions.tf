# Version constraints for the whole module, including the generated chalice.tf.json
# (make package removes the generated file's own, outdated pins).
terraform {
  required_version = ">= 1.5"

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
