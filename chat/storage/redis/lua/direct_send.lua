-- ARGV: sender, recipient (as registered), proposed stamp, text, inbox
-- cap, history cap.  Stores a private message whole, in one step: in the
-- sender's copy of the conversation; in the recipient's unless it ignores
-- the sender; in the recipient's inbox instead of being shown when it is
-- online nowhere (counting what the cap drops); and announces it (D, with
-- x: whether to show it to the recipient).  The stamp is later than the
-- last of both copies.  Returns it.
local prefix = '{prefix}'
local sender, recipient, text = ARGV[1], ARGV[2], ARGV[4]
local s, r = string.lower(sender), string.lower(recipient)
local cap = ARGV[6]
local mine = prefix .. 'dm:' .. s .. ':' .. r
local stamp = ARGV[3]
local last, ms, seq = last_entry(mine)
if last and stamp <= last then stamp = next_stamp(last) end
local shown = 1
if s ~= r then
  local theirs = prefix .. 'dm:' .. r .. ':' .. s
  local their_last, their_ms, their_seq = last_entry(theirs)
  if their_last and stamp <= their_last then stamp = next_stamp(their_last) end
  if redis.call('SISMEMBER', prefix .. 'ignores:' .. r, s) == 1 then
    shown = 0
  else
    local id = next_id(stamp, their_ms, their_seq)
    redis.call('XADD', theirs, 'MAXLEN', '~', cap, id, 't', stamp, 'u', sender, 'm', text)
    redis.call('ZADD', prefix .. 'dms:' .. r, stamp_ms(stamp), s)
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
redis.call('XADD', mine, 'MAXLEN', '~', cap, (next_id(stamp, ms, seq)),
  't', stamp, 'u', sender, 'm', text)
redis.call('ZADD', prefix .. 'dms:' .. s, stamp_ms(stamp), r)
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', 'D', 'u', sender, 'p', recipient, 't', stamp, 'm', text, 'x', shown)
return stamp
