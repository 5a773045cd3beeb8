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

# What the provisioning template does (chalicelib/iot_onboarding.py): a thing named by the
# certificate's CN, the certificate activated and attached to it, this stack's device policy.
data "aws_iam_policy_document" "iot_provisioning" {
  statement {
    sid = "ProvisionThings"
    actions = [
      "iot:CreateThing", "iot:DescribeThing", "iot:UpdateThing", "iot:AttachThingPrincipal",
      "iot:ListThingPrincipals",
    ]
    resources = ["${local.iot_arn_prefix}:thing/*"]
  }

  statement {
    sid = "ActivateCertificates"
    actions = [
      "iot:DescribeCertificate", "iot:UpdateCertificate", "iot:AttachPolicy",
      "iot:ListAttachedPolicies",
    ]
    resources = ["${local.iot_arn_prefix}:cert/*"]
  }

  statement {
    sid       = "DevicePolicy"
    actions   = ["iot:GetPolicy"]
    resources = ["${local.iot_arn_prefix}:policy/${local.iot_device_policy_name}"]
  }
}

resource "aws_iam_role_policy" "iot_provisioning" {
  name   = "${local.name}-jitp"
  role   = aws_iam_role.iot_provisioning.id
  policy = data.aws_iam_policy_document.iot_provisioning.json
}
