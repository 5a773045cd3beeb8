# A log group per function of chalice.tf.json (whose local.function_names make package writes),
# created here before the functions, so retention is bounded and no role needs
# logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "functions" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
}
