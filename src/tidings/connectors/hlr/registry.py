"""Building an HLR provider for a supplier row of an `hlr_*` kind."""

from __future__ import annotations

from tidings.connectors.hlr.base import HlrProvider
from tidings.connectors.hlr.http import HttpHlrProvider
from tidings.connectors.hlr.simulator import HlrSimulator
from tidings.errors import ConfigurationError
from tidings.numbering import CountryTable
from tidings.routing.models import Supplier

HLR_KINDS = ("hlr_simulator", "hlr_http")


def build_hlr_provider(supplier: Supplier, countries: CountryTable) -> HlrProvider:
    options = dict(supplier.options or {})
    if supplier.kind == "hlr_simulator":
        return HlrSimulator(supplier.id, options, countries)
    if supplier.kind == "hlr_http":
        return HttpHlrProvider(supplier.id, options)
    raise ConfigurationError(f"supplier {supplier.name!r} of kind {supplier.kind!r} is no HLR")
