-- ARGV: the hash, the lower-case name, the value, the event kind, its
-- field, the name as spelled.  Adds a user or a room unless taken, and
-- announces it.
local prefix = '{prefix}'
if redis.call('HSETNX', prefix .. ARGV[1], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', ARGV[4], ARGV[5], ARGV[6])
return 1
