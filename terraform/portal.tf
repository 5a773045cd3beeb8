# The browser portal on AWS (README, Portal), only with `portal = true`; without it, none of this
# exists and every route of the API, the portal's included, requires SigV4.
#
# The page signs in to a Cognito user pool (administrator-created users only), exchanges the ID
# token in a Cognito identity pool (no unauthenticated identities) for temporary credentials of
# the role below, and signs each API request with them (SigV4, aws4fetch): the API's own routes
# keep IAM authorization. Only the portal's two GET methods, which serve its static files and the
# sign-in settings (config.json), are open (`portal_authorization`, which the generated
# chalice.tf.json names for exactly those two methods, devtools/chalice_tf.py).
locals {
  portal_count         = var.portal ? 1 : 0
  portal_authorization = var.portal ? "NONE" : "AWS_IAM"

  # Merged into the API function's environment (chalicelib/config.py, portal_settings).
  portal_function_environment = var.portal ? {
    PORTAL_COGNITO_REGION      = var.region
    PORTAL_USER_POOL_ID        = aws_cognito_user_pool.portal[0].id
    PORTAL_USER_POOL_CLIENT_ID = aws_cognito_user_pool_client.portal[0].id
    PORTAL_IDENTITY_POOL_ID    = aws_cognito_identity_pool.portal[0].id
  } : {}
}

resource "aws_cognito_user_pool" "portal" {
  count               = local.portal_count
  name                = "${local.name}-portal"
  deletion_protection = var.allow_teardown ? "INACTIVE" : "ACTIVE"
  mfa_configuration   = "OPTIONAL"

  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length                   = 14
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = true
    temporary_password_validity_days = 3
  }

  software_token_mfa_configuration {
    enabled = true
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "admin_only"
      priority = 1
    }
  }
}

# The browser's client: no secret (a page cannot keep one); the sign-in portal-aws.js makes
# (InitiateAuth USER_PASSWORD_AUTH, over TLS to Cognito) and token refresh, nothing else.
resource "aws_cognito_user_pool_client" "portal" {
  count                                = local.portal_count
  name                                 = "${local.name}-portal"
  user_pool_id                         = aws_cognito_user_pool.portal[0].id
  generate_secret                      = false
  explicit_auth_flows                  = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
  prevent_user_existence_errors        = "ENABLED"
  enable_token_revocation              = true
  allowed_oauth_flows_user_pool_client = false
  access_token_validity                = 60
  id_token_validity                    = 60
  refresh_token_validity               = 12

  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "hours"
  }
}

resource "aws_cognito_identity_pool" "portal" {
  count                            = local.portal_count
  identity_pool_name               = "${local.name}-portal"
  allow_unauthenticated_identities = false
  allow_classic_flow               = false

  cognito_identity_providers {
    client_id               = aws_cognito_user_pool_client.portal[0].id
    provider_name           = aws_cognito_user_pool.portal[0].endpoint
    server_side_token_check = true
  }
}

# Only identities this pool authenticated may take the role.
data "aws_iam_policy_document" "portal_assume" {
  count = local.portal_count

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = ["cognito-identity.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "cognito-identity.amazonaws.com:aud"
      values   = [aws_cognito_identity_pool.portal[0].id]
    }

    condition {
      test     = "ForAnyValue:StringLike"
      variable = "cognito-identity.amazonaws.com:amr"
      values   = ["authenticated"]
    }
  }
}

resource "aws_iam_role" "portal" {
  count                = local.portal_count
  name                 = "${local.name}-portal"
  description          = "${local.name}: users signed in to the browser portal"
  assume_role_policy   = data.aws_iam_policy_document.portal_assume[0].json
  max_session_duration = 3600
}

# What a PKI administrator may call (outputs.tf, api_pki_admin): the portal is their page.
resource "aws_iam_role_policy" "portal" {
  count  = local.portal_count
  name   = "${local.name}-portal"
  role   = aws_iam_role.portal[0].id
  policy = data.aws_iam_policy_document.api_pki_admin.json
}

resource "aws_cognito_identity_pool_roles_attachment" "portal" {
  count            = local.portal_count
  identity_pool_id = aws_cognito_identity_pool.portal[0].id

  roles = {
    authenticated = aws_iam_role.portal[0].arn
  }
}

output "portal_url" {
  description = "The browser portal (with portal = true; sign in as a user of portal_user_pool_id)."
  value       = var.portal ? "${aws_api_gateway_stage.rest_api.invoke_url}/portal" : null
}

output "portal_user_pool_id" {
  description = "The portal's Cognito user pool: create its users with aws cognito-idp admin-create-user."
  value       = var.portal ? aws_cognito_user_pool.portal[0].id : null
}

output "portal_user_pool_client_id" {
  value = var.portal ? aws_cognito_user_pool_client.portal[0].id : null
}

output "portal_identity_pool_id" {
  value = var.portal ? aws_cognito_identity_pool.portal[0].id : null
}
