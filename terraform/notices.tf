# Who hears of what expires: the expiry scan's `expiring` events (source certificates, one a day
# per certificate within expiry_notice_days) go to a topic made here with an e-mail
# subscription (expiry_notice_email), and/or to an existing SNS topic (expiry_notice_topic_arn),
# through a rule on the stage's bus. Neither set: the events are on the bus for whatever rule
# you add. (An existing topic's policy must let events.amazonaws.com publish: it is yours.)
locals {
  expiry_topic_name = "${local.name}-expiring"
  # Spelled out, as the alarm topic's (alarms.tf): the key's policy names the topic and the rule.
  expiry_topic_arn = "arn:${data.aws_partition.current.partition}:sns:${var.region}:${data.aws_caller_identity.current.account_id}:${local.expiry_topic_name}"
  expiry_rule_name = "${local.name}-expiry-notices"
  expiry_rule_arn  = "arn:${data.aws_partition.current.partition}:events:${var.region}:${data.aws_caller_identity.current.account_id}:rule/${aws_cloudwatch_event_bus.certificates.name}/${local.expiry_rule_name}"
  expiry_targets = merge(
    var.expiry_notice_email == "" ? {} : { email = local.expiry_topic_arn },
    var.expiry_notice_topic_arn == "" ? {} : { topic = var.expiry_notice_topic_arn },
  )
}

# Encrypted with the stack's key, whose policy lets EventBridge use it for this topic's messages
# from this rule only (kms.tf).
resource "aws_sns_topic" "expiry_notices" {
  count             = var.expiry_notice_email == "" ? 0 : 1
  name              = local.expiry_topic_name
  kms_master_key_id = aws_kms_key.certificates.arn
}

data "aws_iam_policy_document" "expiry_topic" {
  statement {
    sid       = "TheExpiryRulePublishes"
    actions   = ["sns:Publish"]
    resources = [local.expiry_topic_arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.expiry_rule_arn]
    }
  }
}

resource "aws_sns_topic_policy" "expiry_notices" {
  count  = length(aws_sns_topic.expiry_notices)
  arn    = aws_sns_topic.expiry_notices[0].arn
  policy = data.aws_iam_policy_document.expiry_topic.json
}

# AWS mails the address a confirmation link; the subscription stays pending until it is followed.
resource "aws_sns_topic_subscription" "expiry_email" {
  count     = length(aws_sns_topic.expiry_notices)
  topic_arn = aws_sns_topic.expiry_notices[0].arn
  protocol  = "email"
  endpoint  = var.expiry_notice_email
}

resource "aws_cloudwatch_event_rule" "expiry_notices" {
  count          = length(local.expiry_targets) == 0 ? 0 : 1
  name           = local.expiry_rule_name
  description    = "${local.name}: the expiry scan's notices, to their subscribers"
  event_bus_name = aws_cloudwatch_event_bus.certificates.name
  event_pattern  = jsonencode({ source = ["certificates"], "detail-type" = ["expiring"] })
}

resource "aws_cloudwatch_event_target" "expiry_notices" {
  for_each       = local.expiry_targets
  rule           = aws_cloudwatch_event_rule.expiry_notices[0].name
  event_bus_name = aws_cloudwatch_event_bus.certificates.name
  target_id      = "expiry-${each.key}"
  arn            = each.value
  depends_on     = [aws_sns_topic.expiry_notices, aws_sns_topic_policy.expiry_notices]
}
