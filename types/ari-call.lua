---@meta ari
-- LuaLS / EmmyLua annotations for ari-lua's own API (the `ari` module, the
-- Call layer, ari.log, ari.testing).  Written by hand from lua/ari/*.lua;
-- the ARI classes (ari.Channel, ari.Client, events...) are in ari.d.lua,
-- generated from the schema.  Add this directory to "Lua.workspace.library".

---@class ari.Error
---@field kind string          "http"|"transport"|"param"|"hangup"|"call"|... (lua/ari/errors.lua lists them)
---@field status? integer      HTTP status; nil when there is none
---@field message string
---@field operation? string    "channels.answer"
---@field method? string
---@field path? string
---@field parameter? string
---@field transport? string    kind "transport": "connect"|"timeout"|"reset"|"tls"|...

---@class ari.CallError: ari.Error
---@field kind "call"
---@field operation string
---@field reason "busy"|"no_answer"|"congestion"|"unavailable"|"rejected"|"failed"|string
---@field message string
---@field cause? integer

---@class ari.Hangup: ari.Error
---@field kind "hangup"
---@field hangup true
---@field channel_id string
---@field cause? integer

---The error family (require "ari.errors").
---@class ari.errors
local errors = {}
---Is e an ari-lua error; with kind: of that kind (a transport error also
---answers to its .transport kind), or with that HTTP status (a number).
---@param e any
---@param kind? string|integer
---@return boolean
function errors.is(e, kind) end
---Is e an ari-lua error meaning "no such thing" (404, or kind "not_found")?
---@param e any
---@return boolean
function errors.not_found(e) end

---@class ari.Logger
local Logger = {}
---@param fmt string
---@param ... any
function Logger:error(fmt, ...) end
---@param fmt string
---@param ... any
function Logger:warn(fmt, ...) end
---@param fmt string
---@param ... any
function Logger:info(fmt, ...) end
---@param fmt string
---@param ... any
function Logger:debug(fmt, ...) end

---@class ari.log
---@field error fun(fmt: string, ...: any)
---@field warn fun(fmt: string, ...: any)
---@field info fun(fmt: string, ...: any)
---@field debug fun(fmt: string, ...: any)
---@field new fun(prefix: string): ari.Logger
---@field set_level fun(level: "error"|"warn"|"info"|"debug")
---@field get_level fun(): string
---@field enabled fun(level: string): boolean
---@field set_format fun(format: "text"|"json")
---@field add_secret fun(secret: string)
---@field add_credentials fun(user: string?, password: string?)
---@field redact fun(s: string): string
---@field set_output fun(f: file*|{ write: function, flush: function }|nil)

---@class ari.Call
---@field id string              the channel id
---@field channel ari.Channel    the latest snapshot of the channel
---@field app ari.App
---@field client ari.Client
---@field digits string          the type-ahead buffer
---@field hungup boolean
---@field hangup_cause? integer
---@field log ari.Logger         lines prefixed with the channel id and name
local Call = {}
function Call:answer() end
function Call:ring() end
function Call:ring_stop() end
function Call:progress() end
function Call:hold() end
function Call:unhold() end
---@param direction? "both"|"in"|"out"
function Call:mute(direction) end
---@param direction? "both"|"in"|"out"
function Call:unmute(direction) end
---@param opts? { class: string }|string
function Call:moh(opts) end
function Call:stop_moh() end
function Call:silence() end
function Call:stop_silence() end
---@param dtmf string
---@param opts? { before: integer, between: integer, duration: integer, after: integer }
function Call:send_dtmf(dtmf, opts) end
---@param opts? { cause: integer, reason: string }
function Call:hangup(opts) end
---@param opts? { context: string, extension: string, priority: integer, label: string }
function Call:continue_in_dialplan(opts) end
---@param endpoint string
function Call:redirect(endpoint) end
---@param app string
---@param args? string
function Call:move(app, args) end
---@param name string
---@return string|nil
function Call:get_var(name) end
---@param name string
---@param value string
function Call:set_var(name, value) end
---@param ms integer
function Call:sleep(ms) end
---@return string
function Call:flush_digits() end
function Call:flush_events() end
---Play media (a URI or a list) and wait until it finished.
---@param media string|string[]
---@param opts? { lang: string, interrupt_on_dtmf: boolean|string, timeout: integer }
---@return "done"|"failed"|"timeout"|string result  or the interrupting digit
function Call:play(media, opts) end
---@param digits string|integer
---@param opts? table
function Call:say_digits(digits, opts) end
---@param n integer|string
---@param opts? table
function Call:say_number(n, opts) end
---Collect digits from the type-ahead buffer and the keypad.
---@param opts? { max: integer, timeout: integer, interdigit_timeout: integer, terminators: string }
---@return string digits
---@return "max"|"terminator"|"timeout" why
function Call:get_digits(opts) end
---Prompt and collect digits, with retries; nil once every try failed.
---@param opts { media: string|string[], min: integer?, max: integer?, tries: integer?, timeout: integer?, interdigit_timeout: integer?, terminators: string?, regexp: string?, invalid: string|string[]|nil, flush: boolean? }
---@return string|nil
function Call:play_and_get_digits(opts) end
---Record the caller; returns the finished recording.
---@param opts? { name: string, format: string, max_duration: integer, max_silence: integer, beep: boolean, terminate_on: "none"|"any"|"*"|"#", if_exists: "fail"|"overwrite"|"append" }
---@return ari.LiveRecording
function Call:record(opts) end
---@param other ari.Call
---@param opts? { type: string }
---@return ari.Bridge.helper
function Call:bridge_with(other, opts) end
---Originate to endpoint, wait for the answer, bridge it with this call.
---@param endpoint string
---@param opts? { timeout: integer, caller_id: string, variables: table<string, string>, ringback: boolean, hangup_together: boolean }
---@return ari.Call|nil peer
---@return ari.Bridge.helper|string bridge_or_reason
---@return ari.CallError? err
function Call:dial(endpoint, opts) end
---@param opts? table
---@return ari.Call
function Call:snoop(opts) end
---The call's audio as a stream (docs/media.md).
---@param opts? { format: "ulaw"|"alaw"|"slin"|"slin16", transport: "rtp"|"audiosocket"|"websocket", connection_type: "server"|"client", connection: string, listener: ari.media.Listener, host: string, bind: string, queue_ms: integer, in_queue_ms: integer, timeout: integer, variables: table<string, string> }
---@return ari.media.Stream
function Call:media(opts) end
---@param fn fun(call: ari.Call)
function Call:on_hangup(fn) end
---@param timeout? integer
---@return boolean
function Call:wait_hangup(timeout) end
---Wait for an event of this call; nil on timeout.
---@param type ari.EventType|fun(ev: ari.Event): boolean
---@param opts? { timeout: integer, filter: table|fun(ev: ari.Event): boolean }
---@return ari.Event|nil
function Call:wait(type, opts) end

---A bridge made by app:bridge (the ARI object is .bridge).
---@class ari.Bridge.helper
---@field id string
---@field bridge ari.Bridge
local BridgeHelper = {}
---@param call ari.Call|string
---@param opts? { role: string, mute: boolean, absorb_dtmf: boolean, inhibit_connected_line_updates: boolean }
function BridgeHelper:join(call, opts) end
---@param call ari.Call|string
function BridgeHelper:leave(call) end
---@param media string|string[]
---@param opts? table
---@return string|nil state
function BridgeHelper:play(media, opts) end
---@param class? string
function BridgeHelper:moh(class) end
function BridgeHelper:stop_moh() end
function BridgeHelper:destroy() end
---@return integer
function BridgeHelper:count() end
---@param type ari.EventType|fun(ev: ari.Event): boolean
---@param opts? { timeout: integer, filter: fun(ev: ari.Event): boolean }
---@return ari.Event|nil
function BridgeHelper:wait(type, opts) end

---@class ari.App
---@field name string
---@field client ari.Client
local App = {}
---@param fn fun(call: ari.Call, args: string[])
---@return ari.App
function App:on_call(fn) end
---Originate and wait for the answer; raises ari.CallError.
---@param opts { endpoint: string, caller_id: string?, timeout: integer?, variables: table<string, string>?, app_args: string?, other_channel_id: string?, originator: string?, formats: string? }
---@return ari.Call
function App:originate(opts) end
---@param opts? { type: string, name: string, id: string }
---@return ari.Bridge.helper
function App:bridge(opts) end
---@return integer
function App:active() end
---@return table
function App:stats() end
---@param grace? integer
function App:shutdown(grace) end

---@class ari.MediaError: ari.Error
---@field kind "media"
---@field reason "overflow"|"closed"|"unsupported"

---A call's audio stream (call:media).
---@class ari.media.Stream
---@field format string
---@field rate integer
---@field frame_ms integer
---@field frame_bytes integer
---@field transport string
---@field connection_type string?
---@field channel ari.Channel
---@field channel_id string
---@field bridge ari.Bridge.helper
---@field call ari.Call
---@field external_host string?
---@field media_start string?
---@field closed boolean?
---@field closed_reason string?
local Stream = {}
---@param timeout_ms? integer
---@return string|nil data
---@return number|"timeout"|"closed" ms_or_why
function Stream:read(timeout_ms) end
---@param data string
---@return true|nil ok
---@return ari.MediaError? err
function Stream:write(data) end
---@param timeout_ms? integer
---@return true|nil ok
---@return "timeout"|"closed"|nil why
function Stream:drain(timeout_ms) end
---@return number ms_dropped
function Stream:flush() end
function Stream:close() end
---@return { frames_in: integer, bytes_in: integer, frames_out: integer, bytes_out: integer, lost: integer, reordered: integer, late: integer, duplicates: integer, dropped_foreign: integer, dropped_in: integer, dropped_out: integer, late_ticks: integer, underruns: integer, queue_ms: number, in_queue_ms: number, peer_queue_full: boolean }
function Stream:stats() end

---@class ari.media.Listener
local Listener = {}
---@return integer
function Listener:port() end
---@param path? string
---@return string
function Listener:url(path) end
---@return { accepted: integer, adopted: integer, refused: integer }
function Listener:stats() end
function Listener:close() end

---@class ari.media
---@field audio ari.audio
local media = {}
---@param opts? { host: string, port: integer }
---@return ari.media.Listener
function media.listen(opts) end

---@class ari.audio
local audio = {}
---@param data string
---@param format string
---@return number rms 0..32767
function audio.energy(data, format) end
---@param data string
---@param format string
---@return number dbfs
function audio.dbfs(data, format) end
---@param freq number
---@param ms number
---@param format string
---@param amplitude? number
---@return string
function audio.tone(freq, ms, format, amplitude) end
---@param ms number
---@param format string
---@return string
function audio.silence(ms, format) end
---@param data string
---@param format string
---@return string slin
function audio.decode(data, format) end
---@param slin string
---@param format string
---@return string
function audio.encode(slin, format) end
---@param format string
---@return integer
function audio.rate(format) end
---@param ms number
---@param format string
---@return integer
function audio.bytes(ms, format) end
---@param nbytes integer
---@param format string
---@return number
function audio.ms(nbytes, format) end

---@class ari
---@field version string
---@field audio ari.audio
---@field media ari.media
---@field log ari.log
---@field core table
local ari = {}
---Connect a client: every ARI operation as client.<resource>.<op>{...}.
---@param opts? { url: string, user: string, password: string, app: string|string[], subscribe_all: boolean, events: boolean, timeout: integer, transport: any }
---@return ari.Client
function ari.connect(opts) end
---A Stasis application whose every call runs as its own coroutine.
---@param opts string|{ app: string, url: string?, user: string?, password: string?, auto_hangup: boolean?, subscribe_all: boolean? }
---@return ari.App
function ari.app(opts) end
---@param opts? { type: string, name: string }
---@return ari.Bridge.helper
function ari.bridge(opts) end
---@param fn function
---@param ... any
function ari.spawn(fn, ...) end
---@param ms integer
function ari.sleep(ms) end
---Run fn as a coroutine and drive the loop until it returns (plain lua5.4).
---@param fn function
---@return any ...
function ari.run(fn, ...) end
---@param ms integer
---@param fn function
---@param repeat_ms? integer
---@return { stop: fun(self), active: fun(self): boolean }
function ari.timer(ms, fn, repeat_ms) end
---@return integer ms
function ari.now() end
---@param fn function
function ari.on_shutdown(fn) end
---@param reason? string
function ari.shutdown(reason) end
---@return boolean
function ari.shutting_down() end

---@class ari.testing.view
---@field id string
---@field label? string
---@field channel string
---@field name? string
---@field caller? string
---@field answered boolean
---@field played string[]
---@field playbacks { id: string, media: string, state: string }[]
---@field digits string
---@field dtmf_sent string
---@field recordings { name: string, state: string, duration?: integer, format?: string, cause?: string }[]
---@field bridges string[]
---@field hangup_cause? integer
---@field hangup_cause_txt? string
---@field hung_up_by? "app"|"far end"
---@field events string[]
---@field requests string[]
---@field variables table<string, string>

---@class ari.testing.result
---@field calls ari.testing.view[]
---@field incoming ari.testing.view[]
---@field channels table<string, ari.testing.view>
---@field channel_order string[]
---@field bridges table<string, { id: string, type: string, entered: string[], max_members: integer, played: string[], destroyed: boolean }>
---@field requests { method: string, path: string, status: integer, call?: string }[]
---@field transcript table[]
---@field log string[]
---@field errors string[]
---@field stats { started: integer, ended: integer, normal: integer, hangup: integer, error: integer }
---@field timed_out boolean
local Result = {}
---@return string
function Result:text() end
---@param pattern string
---@return boolean
function Result:find(pattern) end

---@class ari.testing
local testing = {}
---Run an app against the simulated Asterisk in-process.
---@param opts { app: string|function|nil, on_call: fun(call: ari.Call, args: string[])?, name: string?, scenario: string|table|nil, speed: number?, timeout: integer?, args: any[]?, sounds: table<string, integer>?, verbose: boolean?, shutdown_grace: integer? }
---@return ari.testing.result
function testing.run(opts) end
