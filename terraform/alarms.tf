# Who the alarms (events.tf) notify, when they go off and when they clear: an existing topic
# (alarm_topic_arn), a topic made here with an email subscription (alarm_email), and any other ARNs
# (alarm_actions). None of them set: the alarms notify nobody, and only the console shows them.
locals {
  alarm_topic_name = "${local.name}-alarms"
  # Spelled out, not read from the topic: the key's policy names it, and the topic names the key;
  # and so the alarms' actions are known when planned.
  alarm_topic_arn  = "arn:${data.aws_partition.current.partition}:sns:${var.region}:${data.aws_caller_identity.current.account_id}:${local.alarm_topic_name}"
  alarm_source_arn = "arn:${data.aws_partition.current.partition}:cloudwatch:${var.region}:${data.aws_caller_identity.current.account_id}:alarm:${local.name}-*"
  alarm_actions = distinct(concat(
    var.alarm_actions,
    var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn],
    var.alarm_email == "" ? [] : [local.alarm_topic_arn], # the alarms wait for the topic (events.tf)
  ))
}

# Encrypted with the stack's key: CloudWatch cannot publish to a topic under the AWS managed key
# alias/aws/sns, whose policy nobody can extend to it. The key's policy lets CloudWatch use the
# key for this topic's messages, from this stage's alarms, and for nothing else (kms.tf).
resource "aws_sns_topic" "alarms" {
  count             = var.alarm_email == "" ? 0 : 1
  name              = local.alarm_topic_name
  kms_master_key_id = aws_kms_key.certificates.arn
}

# Publishing is CloudWatch's, for this stage's alarms; the account's own principals keep what
# their IAM policies grant them.
data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid       = "ThisStagesAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [local.alarm_topic_arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.alarm_source_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  count  = length(aws_sns_topic.alarms)
  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

# AWS mails the address a confirmation link; the subscription stays pending until it is followed.
resource "aws_sns_topic_subscription" "alarm_email" {
  count     = length(aws_sns_topic.alarms)
  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}
