-- The protocol's stamps (2026-12-02T10:00:00.123Z), for the scripts that
-- store messages.  Stamps compare as strings; a message's stream ID is
-- its stamp's milliseconds since the epoch, so that paging back
-- (history.lua) can seek to a stamp.  Redis's Lua has no os.date: the
-- calendar is Howard Hinnant's days_from_civil / civil_from_days.
local floor = math.floor

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- The whole seconds of a stamp since the epoch.
local function stamp_seconds(s)
  local days = days_from_civil(tonumber(string.sub(s, 1, 4)), tonumber(string.sub(s, 6, 7)),
    tonumber(string.sub(s, 9, 10)))
  return ((days * 24 + tonumber(string.sub(s, 12, 13))) * 60
    + tonumber(string.sub(s, 15, 16))) * 60 + tonumber(string.sub(s, 18, 19))
end

-- A stamp's milliseconds since the epoch.  Messages stored one after
-- the other mostly share their second: its calendar sum is remembered,
-- and can be given (known_second) by a script that stored it.
local last_second, last_second_ms = nil, 0
local function stamp_ms(s)
  local second = string.sub(s, 1, 19)
  if second ~= last_second then
    last_second, last_second_ms = second, stamp_seconds(s) * 1000
  end
  return last_second_ms + tonumber(string.sub(s, 21, 23))
end

-- Remember that stamp's second began at ms since the epoch.
local function known_second(stamp, ms)
  last_second, last_second_ms = string.sub(stamp, 1, 19), ms
end

-- The stamp of a number of milliseconds since the epoch.
local function ms_stamp(ms)
  local t = floor(ms / 1000)
  local days = floor(t / 86400)
  local rest = t - days * 86400
  local y, m, d = civil_from_days(days)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    floor(rest / 3600), floor(rest % 3600 / 60), rest % 60, ms - t * 1000)
end

-- The stamp one millisecond after s (chat.message.next_timestamp): an
-- edit of the milliseconds, but at .999 a carry through the calendar.
local function next_stamp(s)
  local ms = tonumber(string.sub(s, 21, 23))
  if ms < 999 then return string.sub(s, 1, 20) .. string.format('%03d', ms + 1) .. 'Z' end
  return ms_stamp(stamp_seconds(s) * 1000 + 1000)
end

-- A stream's last entry: its stamp (nil if none), and its ID's two parts.
local function last_entry(key)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last == 0 then return nil, -1, 0 end
  local id, fields = last[1][1], last[1][2]
  local dash = string.find(id, '-', 1, true)
  local stamp = nil
  for i = 1, #fields, 2 do
    if fields[i] == 't' then stamp = fields[i + 1] end
  end
  return stamp, tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
