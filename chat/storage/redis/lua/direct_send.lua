-- ARGV: sender, recipient (as registered), proposed stamp, text, inbox
-- cap, history cap.  Stores a private message whole, in one step: in the
-- sender's copy of the conversation; in the recipient's unless it ignores
-- the sender; in the recipient's inbox instead of being shown when it is
-- online nowhere (counting what the cap drops); and announces it (D, with
-- x: whether to show it to the recipient).  The stamp is later than the
-- last of both copies, whose milliseconds are their scores in the
-- owners' dms sets (and their entries' IDs).
local prefix = '{prefix}'
local sender, recipient, text, cap = ARGV[1], ARGV[2], ARGV[4], ARGV[6]
local s, r = string.lower(sender), string.lower(recipient)
local stamp = ARGV[3]
local last = tonumber(redis.call('ZSCORE', prefix .. 'dms:' .. s, r) or '-1')
if s ~= r then
  last = math.max(last, tonumber(redis.call('ZSCORE', prefix .. 'dms:' .. r, s) or '-1'))
end
local ms = stamp_ms(stamp)
if ms <= last then
  ms = last + 1
  stamp = ms_stamp(ms)
end
local id = string.format('%d-0', ms)
local shown = 1
if s ~= r then
  if redis.call('SISMEMBER', prefix .. 'ignores:' .. r, s) == 1 then
    shown = 0
  else
    redis.call('XADD', prefix .. 'dm:' .. r .. ':' .. s, 'MAXLEN', '~', cap, id,
      't', stamp, 'u', sender, 'm', text)
    redis.call('ZADD', prefix .. 'dms:' .. r, ms, s)
    if tonumber(redis.call('HGET', prefix .. 'online', r) or '0') <= 0 then
      shown = 0
      local inbox, limit = prefix .. 'inbox:' .. r, tonumber(ARGV[5])
      local held = redis.call('XLEN', inbox)
      if held >= limit then redis.call('INCRBY', prefix .. 'dropped:' .. r, held - limit + 1) end
      redis.call('XADD', inbox, 'MAXLEN', limit, '*',
        't', stamp, 'u', sender, 'p', recipient, 'm', text)
    end
  end
end
redis.call('XADD', prefix .. 'dm:' .. s .. ':' .. r, 'MAXLEN', '~', cap, id,
  't', stamp, 'u', sender, 'm', text)
redis.call('ZADD', prefix .. 'dms:' .. s, ms, r)
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', 'D', 'u', sender, 'p', recipient, 't', stamp, 'm', text, 'x', shown)
return 1
