# The bucket for data and models: MLflow's artifact store (run artifacts, registered model files)
# under mlflow/, datasets under data/.

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Cross-region replication would double the storage bill of a single-region demo stack; versioning already keeps overwritten and deleted objects.
  #checkov:skip=CKV_AWS_18:Server access logs need a second bucket (with its own logging, lifecycle and policy); access through the instance role is recorded by CloudTrail when data events are enabled for the account.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: MLflow and the services read the bucket directly and announce new models on Kafka.
  bucket_prefix = "${var.bucket_name_prefix}-"
  force_destroy = var.force_destroy

  tags = { Name = "${var.name}-data" }
}

# Bucket owner owns every object; ACLs are disabled altogether.
resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket = aws_s3_bucket.data.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id

  versioning_configuration {
    status = "Enabled"
  }
}

# SSE-KMS with the AWS managed key aws/s3 (no kms_master_key_id): every use of the key is recorded in
# CloudTrail, yet there is no customer key to create, rotate or pay for ($1 a month each), and the
# instance role needs no kms: permission because the managed key lets any principal of the account use it
# through S3. The bucket key cuts KMS requests (and their cost) to a trickle. A customer managed key is
# the step up when another account must read the bucket or keys must be revocable.
resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    # Delete markers with no version left behind them are only clutter.
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules on a bucket whose versioning is still being enabled race with it.
  depends_on = [aws_s3_bucket_versioning.data]
}

# Refuse every request that is not HTTPS with TLS 1.2 or later, whoever makes it.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = data.aws_iam_policy_document.bucket.json

  # Putting a policy before the public access block exists can be refused as "public".
  depends_on = [aws_s3_bucket_public_access_block.data]
}
