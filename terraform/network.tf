# Where the instance lives and who can reach it.

# Zones of the region that offer the chosen instance type (not every zone offers every type).
data "aws_ec2_instance_type_offerings" "zones" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }
}

# Without subnet_id: the default VPC and its default subnets in those zones.
data "aws_vpc" "default" {
  count   = var.subnet_id == null ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = var.subnet_id == null ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }

  filter {
    name   = "availability-zone"
    values = data.aws_ec2_instance_type_offerings.zones.locations
  }
}

# With subnet_id: that subnet and its VPC.
data "aws_subnet" "given" {
  count = var.subnet_id == null ? 0 : 1
  id    = var.subnet_id
}

locals {
  # Null when the default VPC has no default subnet in a suitable zone (the instance's precondition says so).
  subnet_id = var.subnet_id != null ? var.subnet_id : try(sort(data.aws_subnets.default[0].ids)[0], null)
  vpc_id    = var.subnet_id != null ? data.aws_subnet.given[0].vpc_id : data.aws_vpc.default[0].id
}

resource "aws_security_group" "host" {
  name_prefix = "${var.name}-host-"
  description = "fraudops host: SSH and the UIs from allowed_cidr only; HTTP(S) out for packages and images"
  vpc_id      = local.vpc_id

  tags = { Name = "${var.name}-host" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_allowed_cidr" {
  for_each = local.ingress_ports

  security_group_id = aws_security_group.host.id
  description       = "${each.value.description} from allowed_cidr"
  cidr_ipv4         = var.allowed_cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port

  tags = { Name = "${var.name}-${each.key}" }
}

# Egress is limited to the two ports the host needs: Ubuntu's package mirrors (HTTP, signed packages),
# git, container registries, PyPI inside image builds and S3 (HTTPS). The Amazon DNS resolver, the
# instance metadata service and the time service are reached without any rule.
resource "aws_vpc_security_group_egress_rule" "web" {
  for_each = { http = 80, https = 443 }

  security_group_id = aws_security_group.host.id
  description       = "${upper(each.key)} to the internet (packages, git, images, S3)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value

  tags = { Name = "${var.name}-egress-${each.key}" }
}
