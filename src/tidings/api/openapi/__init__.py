"""The OpenAPI document of the three external APIs, told truthfully.

Most handlers read raw requests (JSON, `text/json`, forms, multipart, query strings) and
write their answers by hand, so FastAPI cannot see their bodies or answers. The models in
`models` exist only to describe them: no request is validated against them. Each API's route
class decides its security scheme and the error answers every one of its operations can give
(`document.build_openapi`); each route adds its own body and answers (`routes`).
"""

from tidings.api.openapi.document import build_openapi, install_openapi

__all__ = ["build_openapi", "install_openapi"]
