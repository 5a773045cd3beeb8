"""`make teardown-aws STAGE=<name>`: deletes what one stage created at run time in AWS IoT and
ACM, found by its tags (app and stage) and never by a name, so no other stage is touched.

Terraform's state holds the stack, not what the service registers while it runs: CAs, the
device certificates and things registered under them, and server certificates imported into ACM.
They are account-wide, and AWS IoT takes at most 10 CA certificates with the same subject in an
account, so a stage that is destroyed without this keeps its share. In order:

1. the stage's CAs: ListCACertificates, each one's tags (ListTagsForResource); each is first set
   INACTIVE with auto-registration off, so that no device joins it meanwhile;
2. the certificates registered under each (ListCertificatesByCA, every page, listed before any
   is deleted): things and policies detached, set INACTIVE, deleted;
3. each CA, once nothing is registered below it; a CA that keeps a certificate is kept, so that
   the next run finds that certificate through it;
4. the stage's things (ListThings by the `stage` attribute, `app` checked): principals detached,
   deleted;
5. the stage's ACM imports (ListCertificates, ListTagsForCertificate): deleted;
6. the stage's CA keys in AWS KMS (ListAliases under `alias/<app>/<stage>/`, each key's tags
   checked with ListResourceTags): scheduled for deletion after KMS's shortest wait (7 days, in
   which CancelKeyDeletion restores a key), then the alias deleted.

Every step is idempotent (what is gone already counts as done), so a run after a failure finishes
the job. It prints one line per action and a summary, and exits 1 naming what it could not delete.
It uses the caller's AWS credentials, which need: iot:ListCACertificates, ListTagsForResource,
UpdateCACertificate, ListCertificatesByCA, ListPrincipalThings, DetachThingPrincipal,
ListAttachedPolicies, DetachPolicy, UpdateCertificate, DeleteCertificate, DeleteCACertificate,
ListThings, ListThingPrincipals, DeleteThing; acm:ListCertificates, ListTagsForCertificate,
DeleteCertificate; kms:ListAliases, ListResourceTags, ScheduleKeyDeletion, DeleteAlias (the CA
keys' policy grants the account these).

Usage: python -m devtools.teardown_iot --stage NAME [--app NAME] [--region REGION]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.adapters.aws.errors import aws_error_code, aws_errors
from chalicelib.adapters.aws.importer import ACM_KEY_TYPES
from chalicelib.adapters.aws.kms import PENDING_WINDOW_DAYS, alias_prefix
from chalicelib.ownership import DEFAULT_APP, NAME_RULE, STAGE_KEY, Ownership, is_valid_name

NOT_FOUND = "ResourceNotFoundException"
"""Gone already: for a teardown, done."""
CERTIFICATE_STILL_ATTACHED = "DeleteConflictException"
THING_STILL_ATTACHED = "InvalidRequestException"
"""What AWS IoT answers a deletion while a detachment propagates (DetachThingPrincipal is
asynchronous: seconds, its documentation says); the deletion is tried again after RETRY_DELAYS."""
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
PAGE_SIZE = 250
"""The largest page AWS IoT gives of CAs, of the certificates under a CA and of things."""
SIZED_LISTINGS = frozenset({"list_ca_certificates", "list_certificates_by_ca", "list_things"})
"""The listings whose page size a caller may choose (botocore refuses one for the others)."""


KINDS = ("CA certificates", "device certificates", "things", "ACM certificates", "KMS CA keys")
"""What a teardown deletes, in the summary's order."""


class Teardown:
    """One stage's run-time resources in AWS IoT and ACM, deleted (see the module's doc)."""

    def __init__(
        self,
        iot: Any,
        acm: Any,
        kms: Any,
        ownership: Ownership,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._iot = iot
        self._acm = acm
        self._kms = kms
        self._owner = ownership
        self._say = say
        self._sleep = sleep
        self._page_size = page_size
        self.deleted: Counter[str] = Counter()
        self.failures: list[str] = []

    def run(self) -> list[str]:
        """Everything of the stage deleted; what could not be, one line each."""
        for ca in self._stage_cas():
            self._tear_down_ca(ca)
        self._delete_things()
        self._delete_acm_imports()
        self._delete_ca_keys()
        return self.failures

    def summary(self) -> str:
        counts = ", ".join(f"{self.deleted[kind]} {kind}" for kind in KINDS)
        stage = f"stage {self._owner.stage} (app {self._owner.app})"
        if not self.failures:
            return f"{stage}: deleted {counts}; nothing of it is left"
        return f"{stage}: deleted {counts}; NOT deleted: " + "; ".join(self.failures)

    # AWS IoT CAs and what is registered under them ------------------------------------------

    def _stage_cas(self) -> list[dict[str, Any]]:
        cas = self._listed("CA certificates", self._iot, "list_ca_certificates", "certificates")
        return [ca for ca in cas or [] if self._owned(self._ca_tags(ca["certificateArn"]))]

    def _ca_tags(self, arn: str) -> list[dict[str, str]] | None:
        return self._listed(
            f"tags of {arn}", self._iot, "list_tags_for_resource", "tags", resourceArn=arn
        )

    def _tear_down_ca(self, ca: dict[str, Any]) -> None:
        ca_id = ca["certificateId"]
        closed = self._do(
            f"CA certificate {ca_id}: INACTIVE, auto-registration off",
            self._iot.update_ca_certificate,
            certificateId=ca_id,
            newStatus="INACTIVE",
            newAutoRegistrationStatus="DISABLE",
        )
        below = self._registered_under(ca_id)
        removed = [self._delete_device_certificate(certificate) for certificate in below or []]
        if below is None or not (closed and all(removed)) or self._registered_under(ca_id) != []:
            self._fail(f"CA certificate {ca_id}: kept, as certificates may remain under it")
            return
        self._delete("CA certificate", ca_id, self._iot.delete_ca_certificate, certificateId=ca_id)

    def _registered_under(self, ca_id: str) -> list[dict[str, Any]] | None:
        """Every page, before anything is deleted: a marker may count what is deleted."""
        return self._listed(
            f"certificates under CA {ca_id}",
            self._iot,
            "list_certificates_by_ca",
            "certificates",
            caCertificateId=ca_id,
        )

    def _delete_device_certificate(self, certificate: dict[str, Any]) -> bool:
        certificate_id, arn = certificate["certificateId"], certificate["certificateArn"]
        things = self._listed(
            f"things of {certificate_id}",
            self._iot,
            "list_principal_things",
            "things",
            principal=arn,
        )
        done = [things is not None] + [
            self._do(
                f"certificate {certificate_id}: detached from thing {thing}",
                self._iot.detach_thing_principal,
                thingName=thing,
                principal=arn,
            )
            for thing in things or []
        ]
        policies = self._listed(
            f"policies of {certificate_id}",
            self._iot,
            "list_attached_policies",
            "policies",
            target=arn,
        )
        done += [policies is not None] + [
            self._do(
                f"certificate {certificate_id}: detached policy {policy['policyName']}",
                self._iot.detach_policy,
                policyName=policy["policyName"],
                target=arn,
            )
            for policy in policies or []
        ]
        if certificate.get("status") == "ACTIVE":
            done.append(
                self._do(
                    f"certificate {certificate_id}: INACTIVE",
                    self._iot.update_certificate,
                    certificateId=certificate_id,
                    newStatus="INACTIVE",
                )
            )
        if not all(done):
            return False
        return self._delete(
            "device certificate",
            certificate_id,
            self._iot.delete_certificate,
            CERTIFICATE_STILL_ATTACHED,
            certificateId=certificate_id,
        )

    # Things ----------------------------------------------------------------------------------

    def _delete_things(self) -> None:
        """By their attributes, so that a thing whose certificate an earlier run deleted is
        found too."""
        things = self._listed(
            "things",
            self._iot,
            "list_things",
            "things",
            attributeName=STAGE_KEY,
            attributeValue=self._owner.stage,
        )
        for thing in things or []:
            attributes = thing.get("attributes", {})
            if self._owner.owns(attributes):
                self._delete_thing(thing["thingName"])

    def _delete_thing(self, name: str) -> None:
        principals = self._listed(
            f"principals of thing {name}",
            self._iot,
            "list_thing_principals",
            "principals",
            thingName=name,
        )
        done = [principals is not None] + [
            self._do(
                f"thing {name}: detached {principal}",
                self._iot.detach_thing_principal,
                thingName=name,
                principal=principal,
            )
            for principal in principals or []
        ]
        if all(done):
            self._delete(
                "thing", name, self._iot.delete_thing, THING_STILL_ATTACHED, thingName=name
            )

    # ACM -------------------------------------------------------------------------------------

    def _delete_acm_imports(self) -> None:
        summaries = self._listed(
            "ACM certificates",
            self._acm,
            "list_certificates",
            "CertificateSummaryList",
            Includes={"keyTypes": list(ACM_KEY_TYPES)},
        )
        for summary in summaries or []:
            arn = summary["CertificateArn"]
            tags = self._listed(
                f"tags of {arn}",
                self._acm,
                "list_tags_for_certificate",
                "Tags",
                CertificateArn=arn,
                paged=False,
            )
            if self._owned(tags):
                self._delete(
                    "ACM certificate", arn, self._acm.delete_certificate, CertificateArn=arn
                )

    # KMS -------------------------------------------------------------------------------------

    def _delete_ca_keys(self) -> None:
        prefix = alias_prefix(self._owner)
        aliases = self._listed("KMS aliases", self._kms, "list_aliases", "Aliases")
        for alias in aliases or []:
            name, key_id = alias["AliasName"], alias.get("TargetKeyId")
            if not name.startswith(prefix) or key_id is None:
                continue
            tags = self._listed(f"tags of KMS key {key_id}", self._kms, "list_resource_tags",
                                "Tags", KeyId=key_id, paged=False)  # fmt: skip
            owned = tags is not None and self._owned(
                [{"Key": tag["TagKey"], "Value": tag["TagValue"]} for tag in tags]
            )
            if not owned:
                continue
            scheduled = self._delete(
                "KMS CA key", f"{key_id} ({name}, in 7 days)", self._schedule_deletion,
                KeyId=key_id,
            )  # fmt: skip
            if scheduled:
                self._do(f"deleted alias {name}", self._kms.delete_alias, AliasName=name)

    def _schedule_deletion(self, KeyId: str) -> None:
        """ScheduleKeyDeletion; a key pending deletion already counts as scheduled."""
        try:
            self._kms.schedule_key_deletion(KeyId=KeyId, PendingWindowInDays=PENDING_WINDOW_DAYS)
        except aws_errors() as err:
            if aws_error_code(err) != "KMSInvalidStateException":
                raise
            state = self._kms.describe_key(KeyId=KeyId)["KeyMetadata"].get("KeyState")
            if state != "PendingDeletion":
                raise

    # Steps -----------------------------------------------------------------------------------

    def _owned(self, tags: list[dict[str, str]] | None) -> bool:
        """Whether tags (`[{"Key", "Value"}]`; None: unknown) name this stage and app."""
        if tags is None:
            return False
        return self._owner.owns({tag["Key"]: tag.get("Value", "") for tag in tags})

    def _listed(
        self, what: str, client: Any, operation: str, key: str, paged: bool = True, **arguments: Any
    ) -> list[Any] | None:
        """Every item of every page: none when what it lists from is gone (nothing is left to
        delete there), None when the listing failed (reported)."""
        try:
            if not paged:
                return list(getattr(client, operation)(**arguments).get(key, []))
            if operation in SIZED_LISTINGS:
                arguments["PaginationConfig"] = {"PageSize": self._page_size}
            pages = client.get_paginator(operation).paginate(**arguments)
            return [item for page in pages for item in page.get(key, [])]
        except aws_errors() as err:
            if aws_error_code(err) == NOT_FOUND:
                return []
            self._fail(f"could not list {what}: {err}")
            return None

    def _do(self, action: str, call: Callable[..., Any], **arguments: Any) -> bool:
        """One change: True when made or already made (what it changes is gone)."""
        try:
            call(**arguments)
        except aws_errors() as err:
            if aws_error_code(err) == NOT_FOUND:
                self._say(f"{action}: gone already")
                return True
            self._fail(f"{action}: {err}")
            return False
        self._say(action)
        return True

    def _delete(
        self,
        kind: str,
        name: str,
        call: Callable[..., Any],
        retried_on: str | None = None,
        **arguments: Any,
    ) -> bool:
        """A deletion, tried again while AWS answers `retried_on` (a detachment propagating)."""
        for delay in (*RETRY_DELAYS, None):
            try:
                call(**arguments)
                break
            except aws_errors() as err:
                code = aws_error_code(err)
                if code == NOT_FOUND:
                    self._say(f"deleted {kind} {name}: gone already")
                    return True
                if code != retried_on or delay is None:
                    self._fail(f"{kind} {name}: {err}")
                    return False
                self._sleep(delay)
        self._say(f"deleted {kind} {name}")
        self.deleted[f"{kind}s"] += 1
        return True

    def _fail(self, failure: str) -> None:
        self._say(f"FAILED {failure}")
        self.failures.append(failure)


def parse(arguments: Iterable[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.teardown_iot",
        description="Delete one stage's CAs, device certificates and things in AWS IoT and its "
        "ACM imports, and schedule its KMS CA keys for deletion, found by their tags (app, "
        "stage).",
    )
    parser.add_argument("--stage", required=True, help="the stage to tear down")
    parser.add_argument("--app", default=DEFAULT_APP, help=f"its app (default {DEFAULT_APP})")
    parser.add_argument("--region", help="default: the AWS configuration's")
    options = parser.parse_args(list(arguments))
    for name in ("stage", "app"):
        if not is_valid_name(getattr(options, name)):
            parser.error(f"--{name}: {NAME_RULE}")
    return options


def main(arguments: Iterable[str], session: Any = None) -> int:
    """`session` lets tests hand in theirs (moto); otherwise boto3 finds the credentials."""
    import boto3
    from botocore.config import Config

    from chalicelib.wiring import ADAPTIVE_RETRIES

    options = parse(arguments)
    session = session or boto3.session.Session(region_name=options.region)
    region = options.region or session.region_name
    if not region:
        print("no AWS region: pass --region (REGION= with make) or configure one", file=sys.stderr)
        return 2
    owner = Ownership(options.app, options.stage)
    print(f"tearing down stage {owner.stage} (app {owner.app}) in {region}: AWS IoT, ACM, KMS")
    teardown = Teardown(
        session.client("iot", region_name=region, config=Config(retries=ADAPTIVE_RETRIES)),
        session.client("acm", region_name=region),
        session.client("kms", region_name=region),
        owner,
    )
    failures = teardown.run()
    print(teardown.summary())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
