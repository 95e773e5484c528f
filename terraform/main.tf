# One EC2 host runs the platform's docker-compose stack; one S3 bucket keeps data and models.
# The resources are split by concern: network.tf, s3.tf, iam.tf, ec2.tf; outputs in outputs.tf.

locals {
  tags = merge(var.tags, {
    Project   = var.name
    ManagedBy = "terraform"
  })

  # Where the bootstrap script puts the clone; the compose project runs from there.
  app_dir = "/opt/${var.name}"

  # Ports reachable from allowed_cidr only. SSH is added when a key pair is given. MLflow has no
  # authentication and listens on the host's loopback only: reach it through an SSH tunnel.
  ui_ports = {
    grafana          = { port = 3000, path = "/", description = "Grafana dashboards" }
    airflow          = { port = 8080, path = "/", description = "Airflow UI and API" }
    ingest           = { port = 8001, path = "/docs", description = "ingest service API" }
    trainer          = { port = 8002, path = "/docs", description = "trainer service API" }
    scorer           = { port = 8003, path = "/docs", description = "scorer service API" }
    monitor          = { port = 8004, path = "/docs", description = "monitor service API" }
    registry-gateway = { port = 8005, path = "/docs", description = "registry-gateway service API" }
  }

  ingress_ports = merge(
    { for key, ui in local.ui_ports : key => { port = ui.port, description = ui.description } },
    var.ssh_key_name == null ? {} : { ssh = { port = 22, description = "SSH" } },
  )
}

data "aws_partition" "current" {}
