-- ARGV: stamp, actor, action, room ('' for none), target ('' for none),
-- '1' if there is a reason (else '0'), the reason, the history streams'
-- node size (stream-node-max-entries, 0 if unknown), the history slack
-- in ms.  One act, whole: the rules change as Rules.apply says
-- (chat/storage/moderation.py), a deleted message or a dropped room is
-- erased (erase: the history stream, and the M events that carried it),
-- the act is appended to the audit stream (never trimmed; not for own)
-- and announced (O), with the same fields: t stamp, a actor, v action,
-- r room, g target, m reason (each of the last three only when given).
local stamp, actor, action = ARGV[1], ARGV[2], ARGV[3]
local room, target, has_reason, reason = ARGV[4], ARGV[5], ARGV[6] == '1', ARGV[7]
local node_max, slack = tonumber(ARGV[8]), tonumber(ARGV[9])
local r, who = string.lower(room), string.lower(target)
local events = prefix .. 'events'

local function drop(r)
  redis.call('HDEL', prefix .. 'rooms', r)
  redis.call('HDEL', prefix .. 'stamps', r)
  redis.call('DEL', prefix .. 'history:' .. r)
  -- Every message of the room the events stream still holds.
  local first = nil
  local from = '-'
  while not first do
    local batch = redis.call('XRANGE', events, from, '+', 'COUNT', 1000)
    for _, entry in ipairs(batch) do
      if message_event(entry[2], r) then first = entry[1]; break end
    end
    if #batch < 1000 then break end
    from = id_after(batch[#batch][1])
  end
  if first then
    erase(events, first, node_max, function(entry)
      if message_event(entry[2], r) then return nil end
      return entry[2]
    end)
  end
end

local function delete(r, stamp)
  local history = prefix .. 'history:' .. r
  local entry = find_message(history, stamp, slack)
  if entry then
    local id = entry[1]
    erase(history, id, node_max, function(e)
      if e[1] == id then return nil end
      return e[2]
    end)
  end
  -- The M event that announced it, looked for from the stream's end: a
  -- room's M events come in the order of its stamps, so the first one
  -- met that begins before the stamp and lacks it ends the search.
  local head = stamp .. ' '
  local found, d = nil, nil
  local to, done = '+', false
  while not done do
    local batch = redis.call('XREVRANGE', events, to, '-', 'COUNT', 256)
    for _, e in ipairs(batch) do
      if message_event(e[2], r) then
        local lines = field(e[2], 'd') or ''
        d = without_line(lines, stamp)
        if d then found = e[1]; done = true; break end
        if string.sub(lines, 1, #head) < head then done = true; break end
      end
    end
    if #batch < 256 then break end
    to = id_before(batch[#batch][1])
  end
  if found then
    erase(events, found, node_max, function(e)
      if e[1] == found then return with_d(e[2], d) end
      return e[2]
    end)
  end
end

if action == 'lock' then
  redis.call('HSET', prefix .. 'locks', who, reason)
elseif action == 'unlock' then
  redis.call('HDEL', prefix .. 'locks', who)
elseif room ~= '' then
  local ops, bans, mutes = prefix .. 'ops:' .. r, prefix .. 'bans:' .. r, prefix .. 'mutes:' .. r
  if action == 'drop' then
    drop(r)
    redis.call('DEL', ops, bans, mutes)
    redis.call('HDEL', prefix .. 'owners', r)
    redis.call('HDEL', prefix .. 'topics', r)
  elseif action == 'own' then
    redis.call('HSET', prefix .. 'owners', r, target)
  elseif action == 'op' then
    -- "<n> Name": n keeps the order operators were named in, a repeat
    -- keeping its place.
    local old = redis.call('HGET', ops, who)
    local n
    if old then
      n = string.sub(old, 1, string.find(old, ' ', 1, true) - 1)
    else
      n = string.format('%d', redis.call('INCR', prefix .. 'opsn'))
    end
    redis.call('HSET', ops, who, n .. ' ' .. target)
  elseif action == 'deop' then
    redis.call('HDEL', ops, who)
  elseif action == 'ban' then
    local value = stamp .. ' ' .. actor .. ' ' .. target
    if has_reason then value = value .. ' :' .. reason end
    redis.call('HSET', bans, who, value)
  elseif action == 'unban' then
    redis.call('HDEL', bans, who)
  elseif action == 'mute' then
    redis.call('HSET', mutes, who, target)
  elseif action == 'unmute' then
    redis.call('HDEL', mutes, who)
  elseif action == 'topic' then
    if reason ~= '' then
      redis.call('HSET', prefix .. 'topics', r, stamp .. ' ' .. actor .. ' ' .. reason)
    else
      redis.call('HDEL', prefix .. 'topics', r)
    end
  elseif action == 'delete' then
    delete(r, reason)
  end
  -- The rooms with rules, for the snapshot.
  if redis.call('HEXISTS', prefix .. 'owners', r) == 1
      or redis.call('HEXISTS', prefix .. 'topics', r) == 1
      or redis.call('EXISTS', ops, bans, mutes) > 0 then
    redis.call('SADD', prefix .. 'moderated', r)
  else
    redis.call('SREM', prefix .. 'moderated', r)
  end
end

local fields = {'t', stamp, 'a', actor, 'v', action}
if room ~= '' then fields[#fields + 1] = 'r'; fields[#fields + 1] = room end
if target ~= '' then fields[#fields + 1] = 'g'; fields[#fields + 1] = target end
if has_reason then fields[#fields + 1] = 'm'; fields[#fields + 1] = reason end
if action ~= 'own' then
  redis.call('XADD', prefix .. 'audit', '*', unpack(fields))
end
redis.call('XADD', events, 'MAXLEN', '~', {events_cap}, '*', 'k', 'O', unpack(fields))
return 1
