"""Schema-only models of the three APIs' bodies and answers, and their security schemes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tidings.api.client.statuses import SEED_004_STATUS
from tidings.api.dlr.states import MESSAGE_STATE

REF_TEMPLATE = "#/components/schemas/{model}"

# --- Security schemes ---

API_KEY = "apiKey"
DR_BASIC = "drBasic"
DLR_LOGIN = "dlrLogin"
DLR_PASSWORD = "dlrPassword"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-KEY",
        "description": "A client's live key, or its test key (`test_…`: validated, never "
        "stored or charged). Seed 004.",
    },
    DR_BASIC: {
        "type": "http",
        "scheme": "basic",
        "description": "The client's delivery-report credentials (`tidings clients "
        "dr-credentials`), not its API key. Seed 000.",
    },
    DLR_LOGIN: {
        "type": "apiKey",
        "in": "query",
        "name": "_login",
        "description": "The supplier's DLR login (`tidings suppliers dlr-credentials`); may "
        "also come in the body. Seeds 001/002.",
    },
    DLR_PASSWORD: {
        "type": "apiKey",
        "in": "query",
        "name": "_password",
        "description": "The supplier's DLR password, with `_login`; may also come in the body.",
    },
}

# --- Seed 004 (client REST API) ---

Digits = Annotated[str, Field(pattern=r"^[0-9]+$")]
Money = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2,6}$", examples=["0.02"])]
Reference = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,32}$", examples=["12erdgm9", "AD-6640-7006"])
]
Msisdn = Annotated[str, Field(pattern=r"^(\+|00)?[0-9]{7,15}$", examples=["380972000000"])]
Originator = Annotated[str, Field(min_length=1, max_length=14, examples=["test"])]
SmsBody = Annotated[str, Field(min_length=1, examples=["test sms"])]
Time = Annotated[str, Field(examples=["2026-03-01 12:00:00"], description="UTC")]


class SeedError(BaseModel):
    """Every seed-004 error: the code (Appendix 1) as a string, and what went wrong."""

    error: Annotated[str, Field(pattern=r"^[1-9][0-9]*$", examples=["21"])]
    errorDescription: str


class _SmsOptions(BaseModel):
    validity: Annotated[int, Field(ge=1, le=72)] | None = Field(
        None, description="Hours, 1 to 72 (default 72); a numeric string is accepted too."
    )
    tariff: Annotated[int, Field(ge=0, le=9)] | None = Field(
        None, description="0 to 9; the client's own tariff when absent."
    )
    send_time: str | None = Field(
        None,
        description="ISO 8601; no offset means UTC; past means now; at most 30 days ahead.",
        examples=["2026-03-01T12:00:00Z"],
    )
    scheduledDatetime: str | None = Field(None, description="Another name of send_time.")
    callback_url: str | None = Field(
        None, description="http(s) URL for status pushes; an unusable one is ignored."
    )


class SmsToPhone(_SmsOptions):
    destination: Literal["phone"]
    msisdn: Msisdn
    reference: Reference
    originator: Originator
    body: SmsBody


class PhoneOfBatch(BaseModel):
    msisdn: Msisdn
    reference: Reference


class SmsToPhones(_SmsOptions):
    destination: Literal["phones"]
    phones: Annotated[list[PhoneOfBatch], Field(min_length=1)]
    originator: Originator
    body: SmsBody


class IndividualSms(BaseModel):
    msisdn: Msisdn
    reference: Reference
    originator: Originator
    body: SmsBody


class SmsIndividual(_SmsOptions):
    destination: Literal["individual"]
    phones: Annotated[list[IndividualSms], Field(min_length=1)]


SmsRequestBody = SmsToPhone | SmsToPhones | SmsIndividual


class SmsForm(BaseModel):
    """A form: `payload` holds the request as JSON text, or the fields come one by one
    (`phones` as JSON text)."""

    payload: str | None = Field(None, description="The whole request as JSON text.")
    destination: Literal["phone", "phones", "individual"] | None = None
    msisdn: str | None = None
    reference: str | None = None
    originator: str | None = None
    body: str | None = None
    validity: str | None = None
    tariff: str | None = None
    send_time: str | None = None
    callback_url: str | None = None
    phones: str | None = Field(None, description="A JSON array of objects, as text.")


class SmsCreated(BaseModel):
    error: Literal["0"]
    id: Digits
    reference: str
    price: Money
    currency: str


class SmsBatchItem(BaseModel):
    reference: str
    id: Digits
    error: Literal["0"]
    price: Money
    currency: str


class SmsBatchRefused(BaseModel):
    """A number of the batch refused on its own (33: it opted out); nothing charged for it."""

    reference: str | None
    msisdn: Digits
    error: Literal["33"]
    errorDescription: str


class SmsBatchCreated(BaseModel):
    result: list[SmsBatchItem | SmsBatchRefused]
    error: Literal["0"]
    totalprice: Money
    currency: str
    task_id: Digits


class SmsQuote(BaseModel):
    error: Literal["0"]
    totalprice: Money
    currency: str


class PriceRow(BaseModel):
    type: str
    country: str
    country_name: str
    mcc: str
    price: Money
    currency: str


class PriceTable(BaseModel):
    error: Literal["0"]
    prices: list[PriceRow]


SeedStatus = Annotated[
    str, Field(json_schema_extra={"enum": sorted(set(SEED_004_STATUS.values()))})
]


class SmsStatus(BaseModel):
    error: Literal["0"]
    id: Digits
    msisdn: str
    reference: str | None
    time_in: Time
    time_sent: Time | None
    time_dr: Time | None
    status: SeedStatus
    price: Money
    currency: str


class TaskStatus(BaseModel):
    error: Literal["0"]
    task_id: Digits
    originator: str | None = Field(description="null for `individual` tasks")
    body: str | None = Field(description="null for `individual` tasks")
    validity: int
    total: Digits
    sent: Digits
    delivered: Digits
    expired: Digits
    undeliverable: Digits
    unknown: Digits
    totalprice: Money
    currency: str


class StatFilter(BaseModel):
    """The export's filter (docs/exports.md); every field may also be null or "null"."""

    model_config = ConfigDict(extra="allow")

    message_id: list[int | str] | None = Field(
        None, description="At most 300 ids; when given, every other filter is ignored."
    )
    time_in_from: str | None = Field(None, examples=["2026-03-01 00:00:00"])
    time_in_to: str | None = Field(None, examples=["2026-03-01 23:59:59"])
    time_sent_from: str | None = None
    time_sent_to: str | None = None
    msisdn: list[int | str] | None = None
    originator: str | None = None
    source_type: str | None = Field(None, examples=["api"])
    message_type: str | None = Field(None, examples=["sms"])
    country_name: str | None = Field(None, examples=["Ukraine"])
    operator_id: str | int | None = None
    status: str | list[str] | None = Field(None, examples=["Delivered"])
    sl_clicks: bool | str | None = None
    sl_clicks_comp: str | None = None
    sl_clicks_count: int | str | None = None
    callback_url: str | None = None


class StatForm(BaseModel):
    payload: str | None = Field(None, description="The filter as JSON text.")
    time_in_from: str | None = None
    time_in_to: str | None = None
    message_type: str | None = None
    callback_url: str | None = None


class ExportCreated(BaseModel):
    error: Literal[0]
    key: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ExportFile(BaseModel):
    key: str
    state: Literal["pending", "building", "ready", "empty", "failed"]
    created: Time
    expires: Time
    message_type: str | None
    formats: list[Literal["json", "xml", "csv"]]
    rows: int | None
    size: int | None
    sizes: dict[str, int] | None


class ExportList(BaseModel):
    error: Literal[0]
    files: list[ExportFile]


class ExportDeleted(BaseModel):
    error: Literal[0]


class ExportJsonFile(BaseModel):
    """The json file: one object per message, with the seed's column names (docs/exports.md)."""

    error: Literal[0]
    message_data: list[dict[str, Any]]


# --- Seed 000 (delivery-report queries) ---


class DrError(BaseModel):
    error: Literal[
        "unauthorized",
        "blocked",
        "forbidden",
        "not_found",
        "invalid",
        "rate_limited",
        "too_large",
        "internal",
    ]
    detail: str


class SimpleReport(BaseModel):
    phone_number: str
    last_partner: Literal["sms", "hyber"]
    message_id: Digits
    extra_id: str | None
    time: int = Field(description="Milliseconds since the epoch of the latest status change.")
    status: Literal[-1, 2, 3]
    substatus: int
    hyber_status: int
    total_sms_parts: int
    delivered_sms_parts: int


class ChannelTtl(BaseModel):
    channel: str
    ttl: int


class AdvancedReport(BaseModel):
    reports: list[SimpleReport]
    started: bool
    processing: bool
    delivered_via: str | None
    channels: list[ChannelTtl]


# --- Seeds 001/002 (supplier DLR intake) ---


class JsonApiErrorSource(BaseModel):
    parameter: str


class JsonApiErrorMeta(BaseModel):
    position: int


class JsonApiError(BaseModel):
    code: str
    detail: str
    title: str
    source: JsonApiErrorSource | None = None
    meta: JsonApiErrorMeta | None = None


class DlrErrors(BaseModel):
    errors: Annotated[list[JsonApiError], Field(min_length=1)]


class DlrAttributes(BaseModel):
    status: Literal["ok"]


class DlrMeta(BaseModel):
    request_id: str


class DlrResource(BaseModel):
    attributes: DlrAttributes
    id: Digits
    meta: DlrMeta | None = None
    type: Literal["dlr"]


class DlrData(BaseModel):
    data: DlrResource | list[DlrResource] = Field(
        description="An object for one triple, an array for several (in the request's order)."
    )


_StrOrInt = str | int


class DlrJsonBody(BaseModel):
    """Arguments as a JSON object; repeatable ones as arrays (null: no value there)."""

    model_config = ConfigDict(extra="allow")

    login: _StrOrInt | None = Field(None, alias="_login")
    password: _StrOrInt | None = Field(None, alias="_password")
    message_id: _StrOrInt | list[_StrOrInt | None] | None = None
    message_state: _StrOrInt | list[_StrOrInt | None] | None = None
    request_id: _StrOrInt | list[_StrOrInt | None] | None = None


class DlrForm(BaseModel):
    model_config = ConfigDict(extra="allow")

    login: str | None = Field(None, alias="_login")
    password: str | None = Field(None, alias="_password")
    message_id: list[str] | None = None
    message_state: list[str] | None = None
    request_id: list[str] | None = None


MESSAGE_STATES = list(MESSAGE_STATE)

DLR_QUERY_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "description": description,
        "schema": {"type": "array", "items": item},
    }
    for name, item, description in (
        (
            "message_id",
            {"type": "string", "minLength": 1, "maxLength": 100},
            "The supplier's id of our message; repeatable (the n-th goes with the n-th state).",
        ),
        (
            "message_state",
            {"type": "string", "enum": MESSAGE_STATES},
            "The message's state (any case); one per message_id.",
        ),
        (
            "request_id",
            {"type": "string", "maxLength": 100},
            "The caller's own id, echoed back; none, or one per message_id (empty for none).",
        ),
    )
]


# Every model: build_openapi puts them all in the document's components.
MODELS: tuple[type[BaseModel], ...] = (
    SeedError,
    SmsToPhone,
    SmsToPhones,
    SmsIndividual,
    SmsForm,
    SmsCreated,
    SmsBatchCreated,
    SmsQuote,
    PriceTable,
    SmsStatus,
    TaskStatus,
    StatFilter,
    StatForm,
    ExportCreated,
    ExportList,
    ExportDeleted,
    ExportJsonFile,
    DrError,
    SimpleReport,
    AdvancedReport,
    DlrErrors,
    DlrData,
    DlrJsonBody,
    DlrForm,
)
