-- commhub.lua: post FreeSWITCH channel events to commhub.
--
-- Start it once with FreeSWITCH, in autoload_configs/lua.conf.xml:
--     <param name="startup-script" value="commhub.lua"/>
-- It needs mod_lua and mod_curl (the "curl" API command). Set HOOK to the source's hook URL.
--
-- Direction: FreeSWITCH calls every channel it creates "outbound", and a call an agent's phone
-- places reaches FreeSWITCH as "inbound". Tell commhub in the dialplan of your outbound route:
--     <action application="export" data="commhub_direction=out"/>
-- ("export" so the trunk leg carries it too); calls without it count as inbound.

local HOOK = "https://commhub.example.com/hooks/freeswitch?token=CHANGE-ME"

-- the event headers commhub reads (FreeSWITCH Event List / channel variables)
local FIELDS = {
  "Event-Name", "Unique-ID", "Call-Direction", "Event-Date-Timestamp",
  "Caller-Caller-ID-Number", "Caller-Caller-ID-Name", "Caller-Destination-Number",
  "Caller-Privacy-Hide-Number", "Caller-Privacy-Hide-Name", "Hangup-Cause",
  "variable_billsec", "variable_originating_leg_uuid", "variable_commhub_direction",
  "variable_sip_from_user", "variable_sip_req_user",
}

local function urlencode(text)
  return (string.gsub(text, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function form(event)
  local parts = {}
  for _, name in ipairs(FIELDS) do
    local value = event:getHeader(name)
    if value and value ~= "" then
      parts[#parts + 1] = urlencode(name) .. "=" .. urlencode(value)
    end
  end
  return table.concat(parts, "&")
end

local api = freeswitch.API()
local events = freeswitch.EventConsumer()
events:bind("CHANNEL_CREATE")
events:bind("CHANNEL_ANSWER")
events:bind("CHANNEL_HANGUP_COMPLETE")
events:bind("SHUTDOWN")

while true do
  local event = events:pop(1, 1000)  -- wait up to a second for the next event
  if event then
    if event:getHeader("Event-Name") == "SHUTDOWN" then break end
    -- mod_curl API: curl <url> post <urlencoded data> (the data has no spaces)
    local reply = api:execute("curl", HOOK .. " post " .. form(event))
    if reply and reply:match("^%-ERR") then
      freeswitch.consoleLog("WARNING", "commhub: " .. reply .. "\n")
    end
  end
end
