variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-central-1"
}

variable "app_name" {
  description = "Application name; a prefix of every resource name."
  type        = string
  default     = "iot-cert-service"
}

variable "stage" {
  description = "Chalice stage packaged into chalice.tf.json (make package uses dev)."
  type        = string
  default     = "dev"
}

variable "log_retention_days" {
  description = "How long the functions' CloudWatch logs are kept."
  type        = number
  default     = 365
}

variable "force_destroy_bucket" {
  description = "Let terraform destroy delete the certificate bucket with every certificate in it."
  type        = bool
  default     = false
}
