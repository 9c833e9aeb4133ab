-- ARGV[1]: history length.  The rooms with their recent history, newest
-- first, and who is where.  A new store gets the room general.
if redis.call('HLEN', prefix .. 'rooms') == 0 then
  redis.call('HSET', prefix .. 'rooms', 'general', 'general')
end
local rooms = redis.call('HVALS', prefix .. 'rooms')
local history = {}
for i, name in ipairs(rooms) do
  if tonumber(ARGV[1]) > 0 then
    history[i] = redis.call('XREVRANGE', prefix .. 'history:' .. string.lower(name),
      '+', '-', 'COUNT', ARGV[1])
  else
    history[i] = {}
  end
end
return {rooms, history, redis.call('HKEYS', prefix .. 'present')}
