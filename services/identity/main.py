"""The identity app: ``uvicorn --factory services.identity.main:create_app``."""

from fastapi import FastAPI

from kit.app import AppContext
from kit.app import create_app as create_kit_app
from kit.auth import TokenVerifier
from services.identity.accounts.router import router as accounts_router
from services.identity.config import Settings
from services.identity.mini_program.platform import platforms_from_settings
from services.identity.mini_program.router import router as mini_program_router
from services.identity.network_identity.adapter import network_identity_from_settings
from services.identity.network_identity.router import router as network_identity_router
from services.identity.partners.router import router as partners_router
from services.identity.rights import consumers as rights_consumers
from services.identity.rights.router import router as rights_router
from services.identity.security.router import router as security_router
from services.identity.sms.router import router as sms_router
from services.identity.sms.sender import sms_sender_from_settings
from services.identity.tokens.router import oauth_error_answer, token_endpoint_documented
from services.identity.tokens.router import router as tokens_router
from services.identity.tokens.service import LocalKeySource, OAuthError, active_signing_key
from services.identity.verification.authority import authority_from_settings
from services.identity.verification.router import routers as verification_routers


async def _start(app: FastAPI, context: AppContext) -> None:
    settings = context.settings
    assert isinstance(settings, Settings)
    async with context.database.session() as session:  # the first start makes the first key
        await active_signing_key(session, cipher=context.cipher, settings=settings)
    app.state.authority = authority_from_settings(settings)
    app.state.sms_sender = sms_sender_from_settings(settings)
    app.state.mini_program_platforms = platforms_from_settings(settings)
    app.state.network_identity = network_identity_from_settings(settings)
    app.state.token_verifier = TokenVerifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        key_source=LocalKeySource(context.database, settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_kit_app(
        settings=settings or Settings(),
        title="Identity service",
        description=(
            "Real-name verification, accounts, the token issuer (JWKS), partner clients and the "
            "subject's rights (export for the privacy center, deletion). Policy sections 2A and 3."
        ),
        routers=[
            tokens_router,
            accounts_router,
            sms_router,
            mini_program_router,
            partners_router,
            *verification_routers,
            network_identity_router,
            rights_router,
            security_router,
        ],
        consumers=rights_consumers.consumers,
        on_startup=_start,
    )
    app.add_exception_handler(OAuthError, oauth_error_answer)
    app.openapi = token_endpoint_documented(app)  # type: ignore[method-assign]
    return app
