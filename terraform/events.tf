# The custom bus for certificate events; make package puts the generated inventory rule on it,
# with a retry policy and this dead-letter queue on its target, and the same queue as the
# inventory function's own dead-letter queue. Either way a failed event ends up here as its
# original event JSON (the message body), to be replayed with `aws events put-events` or made
# good by `make reconcile`.
resource "aws_cloudwatch_event_bus" "certificates" {
  name = local.name
}

# EventBridge retries delivery (throttling, a missing function) for up to an hour; the function
# retries its own failures twice (Lambda's asynchronous invocation). Both then dead-letter here.
locals {
  event_retry = {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 24
  }
}

# SQS-managed encryption, not the stack's key: EventBridge would need kms:GenerateDataKey and
# kms:Decrypt on a customer managed key, and the key's policy grants decryption to the API role
# alone. The messages are certificate metadata (FQDN, serial, fingerprint), never a key.
# The policy is the queue's own attribute (its ARN spelled out), not a separate resource: one
# attribute write, which AWS takes up to half a minute to settle, instead of two.
locals {
  dead_letter_queue_name = "${local.name}-inventory-dead-letters"
  dead_letter_queue_arn  = "arn:${data.aws_partition.current.partition}:sqs:${var.region}:${data.aws_caller_identity.current.account_id}:${local.dead_letter_queue_name}"
}

data "aws_iam_policy_document" "inventory_dead_letters" {
  statement {
    sid       = "DeadLettersOfTheRulesOnThisBusAndTheExpiryScansSchedule"
    actions   = ["sqs:SendMessage"]
    resources = [local.dead_letter_queue_arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    # The schedule is on the default bus (EventBridge runs schedules there only).
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        "arn:${data.aws_partition.current.partition}:events:${var.region}:${data.aws_caller_identity.current.account_id}:rule/${aws_cloudwatch_event_bus.certificates.name}/*",
        "arn:${data.aws_partition.current.partition}:events:${var.region}:${data.aws_caller_identity.current.account_id}:rule/${local.function_names["scan_expiring"]}",
      ]
    }
  }
}

resource "aws_sqs_queue" "inventory_dead_letters" {
  name                      = local.dead_letter_queue_name
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600 # 14 days, SQS's maximum: time to notice and drain
  policy                    = data.aws_iam_policy_document.inventory_dead_letters.json
}

resource "aws_cloudwatch_metric_alarm" "inventory_dead_letters" {
  alarm_name          = "${local.name}-inventory-dead-letters"
  alarm_description   = "Inventory events could not be recorded and wait in ${aws_sqs_queue.inventory_dead_letters.name}: replay them or run make reconcile (README, Deploy to AWS)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.inventory_dead_letters.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions # alarms.tf
  ok_actions          = local.alarm_actions
  depends_on          = [aws_sns_topic.alarms]
}

# A function that failed on an event: after its retries the event goes to the dead-letter queue.
locals {
  function_error_alarms = {
    inventory = {
      function    = "record_inventory"
      description = "The inventory function failed on an event; after its retries the event goes to ${aws_sqs_queue.inventory_dead_letters.name}."
    }
    expiry = {
      function    = "scan_expiring"
      description = "The daily expiry scan failed; after its retries the event goes to ${aws_sqs_queue.inventory_dead_letters.name}. Tomorrow's scan sends what today's did not."
    }
    cascade = {
      function    = "revocation_cascade"
      description = "Carrying a CA's revocation to AWS IoT failed; after its retries the event goes to ${aws_sqs_queue.inventory_dead_letters.name}. Replay it: the walk is idempotent."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.function_error_alarms
  alarm_name          = "${local.name}-${each.key}-errors"
  alarm_description   = each.value.description
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = local.function_names[each.value.function] }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions # alarms.tf
  ok_actions          = local.alarm_actions
  depends_on          = [aws_sns_topic.alarms]
}

# The two function-error alarms were two resources before they were one over the functions: a
# stage applied before then keeps its alarms (their state and history) instead of a replacement.
moved {
  from = aws_cloudwatch_metric_alarm.inventory_errors
  to   = aws_cloudwatch_metric_alarm.function_errors["inventory"]
}

moved {
  from = aws_cloudwatch_metric_alarm.cascade_errors
  to   = aws_cloudwatch_metric_alarm.function_errors["cascade"]
}
