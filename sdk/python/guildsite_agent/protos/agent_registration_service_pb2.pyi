from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AgentRegistrationRequest(_message.Message):
    __slots__ = ("agent_id", "agent_name", "version", "capabilities", "hostname", "platform")
    class CapabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    version: str
    capabilities: _containers.ScalarMap[str, str]
    hostname: str
    platform: str
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Mapping[str, str]] = ..., hostname: _Optional[str] = ..., platform: _Optional[str] = ...) -> None: ...

class AgentRegistrationResponse(_message.Message):
    __slots__ = ("success", "message", "server_assigned_id")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SERVER_ASSIGNED_ID_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    server_assigned_id: str
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., server_assigned_id: _Optional[str] = ...) -> None: ...

class AgentUnregistrationRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class AgentUnregistrationResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("agent_id", "status", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    status: str
    metrics: _containers.ScalarMap[str, str]
    def __init__(self, agent_id: _Optional[str] = ..., status: _Optional[str] = ..., metrics: _Optional[_Mapping[str, str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("success", "interval")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    success: bool
    interval: int
    def __init__(self, success: _Optional[bool] = ..., interval: _Optional[int] = ...) -> None: ...

class ReceiveCommandsRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("command_id", "type", "content", "parameters", "is_cancellation")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    IS_CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    type: str
    content: str
    parameters: _containers.ScalarMap[str, str]
    is_cancellation: bool
    def __init__(self, command_id: _Optional[str] = ..., type: _Optional[str] = ..., content: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., is_cancellation: _Optional[bool] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("command_id", "agent_id", "success", "output", "error_message", "exit_code", "execution_time_ms")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    agent_id: str
    success: bool
    output: str
    error_message: str
    exit_code: int
    execution_time_ms: int
    def __init__(self, command_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., success: _Optional[bool] = ..., output: _Optional[str] = ..., error_message: _Optional[str] = ..., exit_code: _Optional[int] = ..., execution_time_ms: _Optional[int] = ...) -> None: ...

class CommandResultResponse(_message.Message):
    __slots__ = ("received", "message")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    received: bool
    message: str
    def __init__(self, received: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...
