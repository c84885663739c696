"""Order fields for a cross-border transfer. No HTTP here.

Who (OB-4-7). Only an internal service's token (kind ``service``) holding the scope
``service:cross_border.transfer`` and carrying the purpose ``cross_border.transfer`` reads
here; a user, staff or partner token is 403, whatever its scopes.

What (OB-4-4). The caller names the fields it needs; it gets the intersection of those and
the fields the catalogue lets ``cross_border.transfer`` see, each masked by the catalogue's
rule for that purpose. A field named but not visible to the purpose is left out (never an
error that would tell what it holds); a field whose value is gone (never given, or deleted
when its retention ended) is left out too. Only the fields given are decrypted.

Whose. The order must be the named subject's: otherwise 404, as if it did not exist. An
anonymised order, or one with none of the asked-for visible fields left, is 410: its
personal data is gone. A subject whose key was shredded is 410 as well
(``SubjectKeyShredded``).

Every read that shows personal data is a processing record: actor the service client id,
purpose ``cross_border.transfer``, the categories actually given, for the user's ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from kit.auth import InsufficientScope, Principal, Scope
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import DomainError, Forbidden, NotFound
from kit.masking import mask_value
from kit.outbox import EventWriter
from services.orders.models import Order
from services.orders.orders import service as orders
from services.orders.orders.service import PERSONAL_FIELDS, RESOURCE
from services.orders.transfer.schemas import TransferOrderFields

PURPOSE: Final = "cross_border.transfer"
SCOPE: Final = Scope.SERVICE_CROSS_BORDER_TRANSFER
MAX_FIELDS: Final = 32
#: One to MAX_FIELDS field names, comma-separated (checked by the router's query).
FIELDS_PATTERN: Final = rf"^[a-z][a-z0-9_]{{0,63}}(,[a-z][a-z0-9_]{{0,63}}){{0,{MAX_FIELDS - 1}}}$"


class NotAService(Forbidden):
    code, title = "service-only", "Internal services only"


class PurposeNotAllowed(Forbidden):
    code, title = "purpose-not-allowed", "Purpose not allowed"


class OrderDataGone(DomainError):
    status, code, title = 410, "gone", "Personal data gone"


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start unless the purpose exists and sees only fields orders stores."""
    if not catalogue.has_purpose(PURPOSE):
        raise RuntimeError(f"{PURPOSE} must be a purpose of the catalogue")
    unknown = set(catalogue.visible_fields(RESOURCE, PURPOSE)) - set(PERSONAL_FIELDS)
    if unknown:
        raise RuntimeError(f"{PURPOSE} sees fields orders does not store: {unknown}")


def check_caller(principal: Principal) -> str:
    """The calling service's client id, once it may read under the purpose; else 403."""
    if principal.kind != "service" or principal.client_type != "server":
        raise NotAService("only internal services read orders for a transfer")
    if not principal.has(SCOPE):
        raise InsufficientScope([SCOPE])
    if PURPOSE not in principal.purposes:
        raise PurposeNotAllowed(
            f"this route serves the purpose {PURPOSE}, which the token does not carry",
            extra={"purpose": PURPOSE},
        )
    return principal.subject


def parse_fields(text: str) -> list[str]:
    """``a,b,c`` (the router checked its shape) -> the names, in order, once each."""
    return list(dict.fromkeys(text.split(",")))


async def transfer_fields(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    actor: str,
    order_id: str,
    subject: str,
    fields: Sequence[str],
) -> TransferOrderFields:
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound("no such order")
    if order.anonymised_at is not None:
        raise OrderDataGone("the order's personal data was erased")
    if order.buyer_id != subject:
        raise NotFound("no such order")
    visible = catalogue.visible_fields(RESOURCE, PURPOSE)
    wanted = [field for field in fields if field in visible]
    personal = await orders.decrypt_fields(session, cipher, order, wanted)
    if wanted and not personal:
        raise OrderDataGone("none of the requested fields is left")
    shown = {field: mask_value(value, visible[field]) for field, value in personal.items()}
    if shown:
        events.processing(
            session,
            subject=order.buyer_id,
            actor=actor,
            action="read",
            purpose=PURPOSE,
            resource=RESOURCE,
            categories=sorted(
                {catalogue.field_policy(RESOURCE, field).category for field in shown}
            ),
        )
    return TransferOrderFields(order_id=order.id, subject=subject, fields=shown)
