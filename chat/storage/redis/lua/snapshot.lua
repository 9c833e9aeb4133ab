-- Everything a process needs to start, read at one point of the event
-- stream: its last ID, how many events the stream has ever had, then one
-- part per feature (the *_snapshot.lua scripts, each the body of a
-- function, run in the order they were registered).  ARGV: the features'
-- arguments, as each one documents.
local prefix = '{prefix}'
local last = redis.call('XREVRANGE', prefix .. 'events', '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #last > 0 then last_id = last[1][1] end
-- How many events were ever added (Redis 7 and later; -1 before).
local added = 0
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', prefix .. 'events')
if ok then
  added = -1
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
  end
end
local reply = {last_id, added}
