// Sign-in on AWS: a Cognito user pool login, exchanged through the Cognito identity pool for
// temporary AWS credentials, with which aws4fetch (vendored, MIT) signs every API request with
// SigV4 for API Gateway's IAM authorization. Loaded only when the portal is deployed on AWS.

import { AwsClient } from './aws4fetch.js';

async function callCognito(url, target, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': target },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.message || answer.__type || `sign-in failed (${response.status})`);
  return answer;
}

export async function signIn(auth, username, password) {
  const idp = `https://cognito-idp.${auth.region}.amazonaws.com/`;
  const identity = `https://cognito-identity.${auth.region}.amazonaws.com/`;
  const login = await callCognito(idp, 'AWSCognitoIdentityProviderService.InitiateAuth', {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: auth.client_id,
    AuthParameters: { USERNAME: username, PASSWORD: password },
  });
  if (!login.AuthenticationResult) {
    throw new Error(`the user pool asks for ${login.ChallengeName}: an administrator sets a permanent password first`);
  }
  const logins = { [`cognito-idp.${auth.region}.amazonaws.com/${auth.user_pool_id}`]: login.AuthenticationResult.IdToken };
  const { IdentityId } = await callCognito(identity, 'AWSCognitoIdentityService.GetId', {
    IdentityPoolId: auth.identity_pool_id, Logins: logins,
  });
  const { Credentials } = await callCognito(identity, 'AWSCognitoIdentityService.GetCredentialsForIdentity', {
    IdentityId, Logins: logins,
  });
  const client = new AwsClient({
    accessKeyId: Credentials.AccessKeyId,
    secretAccessKey: Credentials.SecretKey,
    sessionToken: Credentials.SessionToken,
    service: 'execute-api',
    region: auth.region,
  });
  client.username = username;
  return client;
}
