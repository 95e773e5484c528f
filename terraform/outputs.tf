output "instance_id" {
  description = "EC2 instance id of the host (for the console, Session Manager and `aws ec2 stop-instances`)."
  value       = aws_instance.host.id
}

output "public_ip" {
  description = "Public IPv4 address of the host. It changes when the instance is stopped and started."
  value       = aws_instance.host.public_ip
}

output "public_dns" {
  description = "Public DNS name of the host."
  value       = aws_instance.host.public_dns
}

output "bucket_name" {
  description = "S3 bucket for data and models (MLflow artifacts under mlflow/, datasets under data/)."
  value       = aws_s3_bucket.data.bucket
}

output "ui_urls" {
  description = "The UIs and service APIs, reachable from allowed_cidr only, once the bootstrap has finished (several minutes after apply)."
  value       = { for key, ui in local.ui_ports : key => "http://${aws_instance.host.public_dns}:${ui.port}${ui.path}" }
}

output "ssh_command" {
  description = "SSH command for the ubuntu user, or null without ssh_key_name."
  value       = var.ssh_key_name == null ? null : "ssh -i ~/.ssh/${var.ssh_key_name}.pem ubuntu@${aws_instance.host.public_dns}"
}

output "ssm_command" {
  description = "Session Manager command to open a shell without SSH, or null unless enable_ssm."
  value       = var.enable_ssm ? "aws ssm start-session --region ${var.region} --target ${aws_instance.host.id}" : null
}
