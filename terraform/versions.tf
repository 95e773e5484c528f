# Terraform and provider versions. Run `terraform init` once; it writes .terraform.lock.hcl, which
# records the exact provider build (commit it next to these files).
terraform {
  # 1.15 is the release the offline checks run (tests/unit/test_terraform.py embeds it).
  required_version = "~> 1.15"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State is local by default (terraform.tfstate next to these files, holding no secrets: every
  # password is generated on the instance). For a team, keep it in S3 instead: create the state bucket
  # once by hand (versioned, encrypted, public access blocked), uncomment this block, fill it in, then
  # run `terraform init -migrate-state`.
  #
  # backend "s3" {
  #   bucket       = "my-terraform-state-bucket"
  #   key          = "fraudops/terraform.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   use_lockfile = true # S3-native state locking (Terraform 1.10+), no DynamoDB table needed
  # }
}

provider "aws" {
  region = var.region

  # Every resource that supports tags gets these, so the whole stack can be found (and its cost
  # attributed) by tag.
  default_tags {
    tags = local.tags
  }
}
