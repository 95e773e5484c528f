# The host: Ubuntu 24.04 LTS, whose own archive ships Docker with the compose and buildx plugins.

data "aws_ec2_instance_type" "host" {
  instance_type = var.instance_type
}

locals {
  # Graviton types (t4g, m7g, ...) need the arm64 image, everything else amd64.
  ami_architecture = contains(data.aws_ec2_instance_type.host.supported_architectures, "arm64") ? "arm64" : "amd64"
}

# The newest Ubuntu 24.04 image published by Canonical (its AWS account id is 099720109477).
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"]

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${local.ami_architecture}-server-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }

  filter {
    name   = "root-device-type"
    values = ["ebs"]
  }
}

locals {
  # Everything user_data.sh.tftpl interpolates; no secret is among them (the host makes its own).
  user_data_vars = {
    app_dir        = local.app_dir
    repository_url = var.repository_url
    git_ref        = var.git_ref
    compose_file   = var.compose_file
    bucket         = aws_s3_bucket.data.bucket
    region         = var.region
  }
}

resource "aws_instance" "host" {
  #checkov:skip=CKV_AWS_88:The UIs and APIs are reached directly on the host's public address; the security group admits allowed_cidr only, and there is no load balancer or VPN in this single-host deployment.
  ami                         = data.aws_ami.ubuntu.id
  instance_type               = var.instance_type
  subnet_id                   = local.subnet_id
  vpc_security_group_ids      = [aws_security_group.host.id]
  associate_public_ip_address = true
  iam_instance_profile        = aws_iam_instance_profile.host.name
  key_name                    = var.ssh_key_name
  monitoring                  = true
  ebs_optimized               = true

  user_data                   = templatefile("${path.module}/user_data.sh.tftpl", local.user_data_vars)
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint          = "enabled"
    http_tokens            = "required"
    instance_metadata_tags = "disabled"
    # Two hops: containers on Docker's bridge network are one hop further than the host, and MLflow's
    # S3 client in a container must reach the metadata service for the role's credentials.
    http_put_response_hop_limit = 2
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    delete_on_termination = true
    tags                  = merge(local.tags, { Name = "${var.name}-root" })
  }

  dynamic "credit_specification" {
    for_each = data.aws_ec2_instance_type.host.burstable_performance_supported ? [var.cpu_credits] : []
    content {
      cpu_credits = credit_specification.value
    }
  }

  tags = { Name = var.name }

  lifecycle {
    # A newer Ubuntu image must not replace a running host at every plan; replace on purpose with
    # `terraform apply -replace=aws_instance.host`.
    ignore_changes = [ami]

    precondition {
      condition     = local.subnet_id != null
      error_message = "The default VPC has no default subnet in a zone offering ${var.instance_type}: set subnet_id."
    }
  }
}
