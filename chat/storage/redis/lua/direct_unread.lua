-- ARGV: lower-case user, how many to show.  Empties the user's inbox:
-- its newest entries (newest first, {t, u, p, m} each), and how many more
-- it had or dropped past its cap.
local prefix = '{prefix}'
local inbox, dropped = prefix .. 'inbox:' .. ARGV[1], prefix .. 'dropped:' .. ARGV[1]
local held, shown = redis.call('XLEN', inbox), tonumber(ARGV[2])
local newest = {}
if held > 0 and shown > 0 then
  for i, entry in ipairs(redis.call('XREVRANGE', inbox, '+', '-', 'COUNT', shown)) do
    local fields, message = entry[2], {}
    for j = 2, #fields, 2 do message[#message + 1] = fields[j] end
    newest[i] = message
  end
end
local older = held - #newest + tonumber(redis.call('GET', dropped) or '0')
redis.call('DEL', inbox, dropped)
return {newest, older}
