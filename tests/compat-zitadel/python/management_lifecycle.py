"""Drives tessera-server's management API with ZITADEL's Python SDK, zitadel-client 4.1.9.

Run by tests/python_management.rs with the interpreter of a virtual environment that has
zitadel-client installed. An administrator (a service user holding IAM_OWNER) signs in
with client credentials, as a ZITADEL user would, and takes a service user through its
whole life:

1. creates it (the organization comes from details.resourceOwner of the administrator);
2. adds a secret, and the new user gets a token with it;
3. adds a key, and the new user gets a token with the key file (JWT profile);
4. adds a personal access token, which works at userinfo;
5. creates a project with a role, an API app and an authorization: introspection by
   the app shows the role in the user's token;
6. deactivates the user: its token is inactive;
7. deletes it.

The SDK returns None instead of raising when it cannot read an answer, so every answer
is checked for the fields it must have. Prints one JSON object on standard output; any
failure raises (a traceback on standard error and a non-zero exit status).
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import urllib.parse
import urllib.request

from zitadel_client import Zitadel
from zitadel_client.auth.client_credentials_authenticator import (
    ClientCredentialsAuthenticator,
)
from zitadel_client.auth.web_token_authenticator import WebTokenAuthenticator
from zitadel_client.models import (
    ApplicationServiceAPIAuthMethodType,
    ApplicationServiceCreateAPIApplicationRequest,
    ApplicationServiceCreateApplicationRequest,
    AuthorizationServiceCreateAuthorizationRequest,
    ProjectServiceAddProjectRoleRequest,
    ProjectServiceCreateProjectRequest,
    UserServiceAddKeyRequest,
    UserServiceAddPersonalAccessTokenRequest,
    UserServiceAddSecretRequest,
    UserServiceCreateUserRequest,
    UserServiceDeactivateUserRequest,
    UserServiceDeleteUserRequest,
    UserServiceGetUserByIDRequest,
    UserServiceMachine,
)


def need(value, what):
    """The SDK answers None when it could not read a response: fail loudly instead."""
    if value is None:
        raise AssertionError(f"no answer for {what}")
    return value


def http(method, url, *, headers=None, form=None):
    """A request with the standard library; returns (status, parsed JSON body)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def basic(client_id, secret):
    raw = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def introspect(host, app_id, app_secret, token):
    status, body = http(
        "POST",
        host + "/oauth/v2/introspect",
        headers=basic(app_id, app_secret),
        form={"token": token},
    )
    if status != 200:
        raise AssertionError(f"introspection answered {status}: {body}")
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--admin-user-id", required=True)
    args = parser.parse_args()
    host = args.host
    result = {}

    with Zitadel.with_client_credentials(host, args.client_id, args.client_secret) as z:
        me = need(
            z.users.get_user_by_id(UserServiceGetUserByIDRequest(user_id=args.admin_user_id)),
            "GetUserByID",
        )
        organization_id = need(me.details.resource_owner, "details.resourceOwner")

        # 1. A service user.
        created = need(
            z.users.create_user(
                UserServiceCreateUserRequest(
                    organization_id=organization_id,
                    username="py-lifecycle",
                    machine=UserServiceMachine(name="Python lifecycle"),
                )
            ),
            "CreateUser",
        )
        user_id = need(created.id, "CreateUser.id")
        result["user_id"] = user_id

        # 2. A secret: the new user gets a token with it.
        secret = need(
            z.users.add_secret(UserServiceAddSecretRequest(user_id=user_id)), "AddSecret"
        ).client_secret
        need(secret, "AddSecret.clientSecret")
        token = ClientCredentialsAuthenticator.builder(host, "py-lifecycle", secret).build()
        result["secret_token"] = bool(token.get_auth_token())

        # 3. A key: the new user gets a token with the key file.
        key = need(z.users.add_key(UserServiceAddKeyRequest(user_id=user_id)), "AddKey")
        key_file = base64.b64decode(need(key.key_content, "AddKey.keyContent"))
        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as handle:
            handle.write(key_file)
            key_path = handle.name
        try:
            web_token = WebTokenAuthenticator.from_json(host, key_path)
            result["key_token"] = bool(web_token.get_auth_token())
        finally:
            os.unlink(key_path)

        # 4. A personal access token works at userinfo.
        pat = need(
            z.users.add_personal_access_token(
                UserServiceAddPersonalAccessTokenRequest(user_id=user_id)
            ),
            "AddPersonalAccessToken",
        )
        status, info = http(
            "GET",
            host + "/oidc/v1/userinfo",
            headers={"Authorization": "Bearer " + need(pat.token, "token")},
        )
        if status != 200 or info.get("sub") != user_id:
            raise AssertionError(f"userinfo with the PAT answered {status}: {info}")
        result["pat_userinfo"] = info["sub"]

        # 5. A project with a role, an API app and an authorization.
        project = need(
            z.projects.create_project(
                ProjectServiceCreateProjectRequest(organization_id=organization_id, name="Py orders")
            ),
            "CreateProject",
        )
        project_id = need(project.project_id, "projectId")
        need(
            z.projects.add_project_role(
                ProjectServiceAddProjectRoleRequest(
                    project_id=project_id, role_key="reader", display_name="Reader"
                )
            ),
            "AddProjectRole",
        )
        app = need(
            z.applications.create_application(
                ApplicationServiceCreateApplicationRequest(
                    project_id=project_id,
                    name="py-orders-api",
                    api_configuration=ApplicationServiceCreateAPIApplicationRequest(
                        auth_method_type=ApplicationServiceAPIAuthMethodType.API_AUTH_METHOD_TYPE_BASIC
                    ),
                )
            ),
            "CreateApplication",
        )
        app_client = need(app.api_configuration.client_id, "clientId")
        app_secret = need(app.api_configuration.client_secret, "clientSecret")
        need(
            z.authorizations.create_authorization(
                AuthorizationServiceCreateAuthorizationRequest(
                    user_id=user_id,
                    project_id=project_id,
                    organization_id=organization_id,
                    role_keys=["reader"],
                )
            ),
            "CreateAuthorization",
        )
        scope = (
            f"openid urn:zitadel:iam:org:project:id:{project_id}:aud "
            "urn:zitadel:iam:org:project:role:reader"
        )
        status, issued = http(
            "POST",
            host + "/oauth/v2/token",
            headers=basic("py-lifecycle", secret),
            form={"grant_type": "client_credentials", "scope": scope},
        )
        if status != 200:
            raise AssertionError(f"token request answered {status}: {issued}")
        access_token = issued["access_token"]
        seen = introspect(host, app_client, app_secret, access_token)
        roles = seen.get("urn:zitadel:iam:org:project:roles", {})
        if not seen.get("active") or "reader" not in roles:
            raise AssertionError(f"introspection by the app: {seen}")
        result["introspected_roles"] = sorted(roles)

        # 6. Deactivated: its token is inactive.
        need(
            z.users.deactivate_user(UserServiceDeactivateUserRequest(user_id=user_id)),
            "DeactivateUser",
        )
        result["active_after_deactivation"] = introspect(
            host, app_client, app_secret, access_token
        ).get("active")

        # 7. Deleted.
        need(z.users.delete_user(UserServiceDeleteUserRequest(user_id=user_id)), "DeleteUser")
        result["deleted"] = True

    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
