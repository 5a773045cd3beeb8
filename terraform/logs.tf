# Log groups of the two functions Chalice generates, created here so retention is bounded and the
# role needs no logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "functions" {
  for_each = toset([
    "/aws/lambda/${var.app_name}-${var.stage}",
    "/aws/lambda/${var.app_name}-${var.stage}-record_inventory",
  ])

  name              = each.value
  retention_in_days = var.log_retention_days
}
