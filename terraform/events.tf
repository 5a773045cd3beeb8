# The custom bus for `created` events; the generated inventory rule is put on it by make package.
resource "aws_cloudwatch_event_bus" "certificates" {
  name = "${var.app_name}-${var.stage}"
}
