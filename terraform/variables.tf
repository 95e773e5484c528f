# Inputs. Only allowed_cidr and repository_url have no default: Terraform asks for them (or reads them
# from terraform.tfvars, see terraform.tfvars.example).

variable "region" {
  description = "AWS region to deploy to. us-east-1 is among the cheapest for EC2, EBS and S3."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as us-east-1 or eu-west-1."
  }
}

variable "name" {
  description = "Name given to the instance, security group and IAM role (as a prefix), and the Project tag."
  type        = string
  default     = "fraudops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the single host running the whole docker-compose stack (Kafka, Postgres, MLflow, Airflow, Prometheus, Grafana and the five services)."
  type        = string
  # Cost: t3.large (2 vCPU, 8 GiB) is about $0.083/hour on demand in us-east-1, roughly $61 a month if left
  # running; it is the smallest size whose memory holds the stack. t3.xlarge (16 GiB) doubles the price and
  # gives Airflow and training more room. See README.md for the whole bill.
  default = "t3.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 instance type, e.g. t3.large."
  }
}

variable "cpu_credits" {
  description = "CPU credit mode of a burstable (t2/t3/t4g) instance. \"standard\" throttles to the baseline when credits run out and never bills extra; \"unlimited\" keeps full speed and bills surplus credits (up to about $0.05 per vCPU-hour). Ignored by other families."
  type        = string
  default     = "standard"

  validation {
    condition     = contains(["standard", "unlimited"], var.cpu_credits)
    error_message = "cpu_credits must be \"standard\" or \"unlimited\"."
  }
}

variable "root_volume_size_gb" {
  description = "Size in GiB of the encrypted gp3 root volume, which holds the container images and every volume of the stack (Kafka's log, Postgres, Prometheus)."
  type        = number
  default     = 40

  validation {
    condition     = var.root_volume_size_gb >= 30 && var.root_volume_size_gb <= 1024 && floor(var.root_volume_size_gb) == var.root_volume_size_gb
    error_message = "root_volume_size_gb must be a whole number of GiB between 30 and 1024."
  }
}

variable "allowed_cidr" {
  description = "The one IPv4 network (CIDR) allowed to reach SSH and the web UIs and APIs, e.g. your own address as 203.0.113.7/32. No default on purpose: you must say who may connect."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.allowed_cidr))
    error_message = "allowed_cidr must be an IPv4 CIDR block such as 203.0.113.7/32."
  }

  validation {
    condition     = var.allowed_cidr != "0.0.0.0/0" && try(tonumber(split("/", var.allowed_cidr)[1]) >= 8, false)
    error_message = "allowed_cidr must not open the stack to the internet: 0.0.0.0/0 and any prefix shorter than /8 are refused."
  }

  validation {
    condition     = try(cidrhost(var.allowed_cidr, 0) == split("/", var.allowed_cidr)[0], false)
    error_message = "allowed_cidr must start at its network address (e.g. 198.51.100.0/24, not 198.51.100.7/24)."
  }
}

variable "ssh_key_name" {
  description = "Name of an existing EC2 key pair for SSH as the ubuntu user. Null (the default) means no key and no SSH rule: use Session Manager (enable_ssm) or nothing."
  type        = string
  default     = null

  validation {
    condition     = var.ssh_key_name == null || try(length(trimspace(var.ssh_key_name)) > 0, false)
    error_message = "ssh_key_name must be null or the non-empty name of a key pair."
  }
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore to the instance role so that AWS Systems Manager Session Manager can open a shell without SSH. Off by default (least privilege)."
  type        = bool
  default     = false
}

variable "subnet_id" {
  description = "Subnet to launch the instance in; it must give instances a public IPv4 address route (an internet gateway). Null (the default) picks a default subnet of the region's default VPC in a zone that offers instance_type."
  type        = string
  default     = null

  validation {
    condition     = var.subnet_id == null || can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "subnet_id must be null or a subnet id such as subnet-0123456789abcdef0."
  }
}

variable "repository_url" {
  description = "HTTPS address of this project's git repository, cloned anonymously by the instance (so it must be readable without credentials)."
  type        = string

  validation {
    condition     = can(regex("^https://[A-Za-z0-9._~/:@%+-]+$", var.repository_url))
    error_message = "repository_url must be an https:// git address without spaces or quotes."
  }
}

variable "git_ref" {
  description = "Branch, tag or full commit id of the repository to deploy."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$", var.git_ref)) && !strcontains(var.git_ref, "..")
    error_message = "git_ref must be a branch, tag or commit id (letters, digits, '.', '_', '/', '-'; no '..')."
  }
}

variable "compose_file" {
  description = "Path of the docker-compose file inside the repository, relative to its root."
  type        = string
  default     = "docker-compose.yml"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-][A-Za-z0-9._/-]*\\.ya?ml$", var.compose_file)) && !strcontains(var.compose_file, "..")
    error_message = "compose_file must be a relative path to a .yml or .yaml file inside the repository."
  }
}

variable "bucket_name_prefix" {
  description = "Prefix of the S3 bucket for data and models; AWS appends a unique suffix."
  type        = string
  default     = "fraudops"

  validation {
    # S3 allows a bucket_prefix of at most 37 characters; the configuration appends a hyphen.
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,34}[a-z0-9]$", var.bucket_name_prefix)) && !startswith(var.bucket_name_prefix, "xn--")
    error_message = "bucket_name_prefix must be 3-36 lowercase letters, digits or hyphens, not starting with xn--."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which an overwritten or deleted object version in the bucket is removed for good."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number between 1 and 3650."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with every object version in it. False (the default) makes destroy fail on a non-empty bucket, so data and models are never lost by accident."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags for every resource (merged over Project and ManagedBy)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.tags) : length(key) <= 128 && !startswith(lower(key), "aws:")])
    error_message = "Tag keys must be at most 128 characters and must not start with aws:."
  }
}
