# AWS IoT Core: the policy every device of this stack gets (attached when the API registers a
# device, or by just-in-time provisioning), and the role AWS IoT assumes to provision a device
# just in time (POST /certificates/{ca}/aws-iot/register with "provisioning": "jitp").
locals {
  iot_arn_prefix         = "arn:${data.aws_partition.current.partition}:iot:${var.region}:${data.aws_caller_identity.current.account_id}"
  iot_device_policy_name = "${local.name}-devices"
  thing_name             = "$${iot:Connection.Thing.ThingName}"
}

# A device connects only as its own thing (client id = thing name, the certificate attached to
# that thing) and publishes and subscribes only under devices/<thing name>/.
resource "aws_iot_policy" "devices" {
  count = var.manage_iot_device_policy ? 1 : 0
  name  = local.iot_device_policy_name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Action    = "iot:Connect"
        Resource  = "${local.iot_arn_prefix}:client/${local.thing_name}"
        Condition = { Bool = { "iot:Connection.Thing.IsAttached" = "true" } }
      },
      {
        Effect   = "Allow"
        Action   = ["iot:Publish", "iot:Receive"]
        Resource = "${local.iot_arn_prefix}:topic/devices/${local.thing_name}/*"
      },
      {
        Effect   = "Allow"
        Action   = "iot:Subscribe"
        Resource = "${local.iot_arn_prefix}:topicfilter/devices/${local.thing_name}/*"
      },
    ]
  })
}

data "aws_iam_policy_document" "iot_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["iot.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "iot_provisioning" {
  name               = "${local.name}-jitp"
  description        = "${local.name}: AWS IoT provisions devices just in time"
  assume_role_policy = data.aws_iam_policy_document.iot_assume.json
}

# AWS IoT's just-in-time provisioning runs the CA's template (chalicelib/iot_onboarding.py)
# through RegisterThing as this role, which AWS documents with the AWS managed policy
# AWSIoTThingsRegistration ("service-role/": RegisterThing, CreateThing, AttachThingPrincipal,
# AttachPolicy, DescribeCertificate, UpdateCertificate, GetPolicy ... on "*"). That policy, not a
# hand-written subset: the subset scoped to thing/* and cert/* lacked RegisterThing itself, and
# granted AttachThingPrincipal on the thing's ARN but not on the certificate's; AWS keeps the
# managed policy in step with what provisioning calls. Its actions take
# "*" (provisioning picks the things' and certificates' ids); IoT itself is the only principal
# that can assume the role (iot_assume), and only the API role may pass it, to IoT (iam.tf).
resource "aws_iam_role_policy_attachment" "iot_provisioning" {
  role       = aws_iam_role.iot_provisioning.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSIoTThingsRegistration"
}
