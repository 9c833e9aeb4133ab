-- Moderation's library (after stamps.lua): finding a room's message by
-- its stamp, and erasing stream entries for good.
local prefix = '{prefix}'

-- The value of one field of a stream entry's flat field list (nil if none).
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- The milliseconds part of a stream ID, and the ID just after one.
local function id_ms(id)
  return tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
end

local function id_after(id)
  local dash = string.find(id, '-', 1, true)
  return string.sub(id, 1, dash) .. string.format('%d', tonumber(string.sub(id, dash + 1)) + 1)
end

local function id_before(id)
  local dash = string.find(id, '-', 1, true)
  local ms, seq = tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
  if seq > 0 then return string.format('%d-%d', ms, seq - 1) end
  return string.format('%d-18446744073709551615', ms - 1)
end

-- The entry of a history stream stamped `stamp`, or nil.  Its ID is the
-- stamp's milliseconds (rooms_say.lua), or for history stored before
-- that, Redis's clock a little later: up to `slack` ms are searched,
-- stopping at an entry stamped later whose ID is its stamp.
local function find_message(key, stamp, slack)
  local ms = stamp_ms(stamp)
  local from, to = string.format('%d', ms), string.format('%d', ms + slack)
  while true do
    local batch = redis.call('XRANGE', key, from, to, 'COUNT', 64)
    for _, entry in ipairs(batch) do
      local t = field(entry[2], 't')
      if t == stamp then return entry end
      if t and t > stamp and id_ms(entry[1]) == stamp_ms(t) then return nil end
    end
    if #batch < 64 then return nil end
    from = id_after(batch[#batch][1])
  end
end

-- Erase entries of a stream for good.  XDEL only marks an entry deleted:
-- its bytes stay in the stream's node (a listpack of up to node_max
-- entries, deleted ones included) until every entry of the node is
-- deleted, and DUMP, RDB and replicas copy the node whole.  So every
-- entry from node_max before `first` (that far back lies the start of
-- first's node) to the end is deleted, which frees every node that held
-- an erased entry, and added back with its own ID as change(entry) says:
-- its new field list, or nil to leave it out.  node_max 0 (unknown, or
-- no limit) takes the whole stream.  The stream's last ID and count of
-- entries ever added are kept, so readers going on from an ID, and the
-- count the events reader checks, see no difference.  Cost: O(entries
-- from first to the end).
local function erase(key, first, node_max, change)
  local start = '-'
  if node_max > 0 then
    local before = redis.call('XREVRANGE', key, first, '-', 'COUNT', node_max + 1)
    if #before == 0 then return end
    start = before[#before][1]
  end
  local info = redis.call('XINFO', 'STREAM', key)
  local last, added = field(info, 'last-generated-id'), field(info, 'entries-added')
  local entries = redis.call('XRANGE', key, start, '+')
  local ids = {}
  for i, entry in ipairs(entries) do ids[i] = entry[1] end
  for i = 1, #ids, 1000 do
    redis.call('XDEL', key, unpack(ids, i, math.min(i + 999, #ids)))
  end
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local top_id = '0-0'
  if #top > 0 then top_id = top[1][1] end
  redis.call('XSETID', key, top_id)
  for _, entry in ipairs(entries) do
    local fields = change(entry)
    if fields then redis.call('XADD', key, entry[1], unpack(fields)) end
  end
  if added then
    redis.call('XSETID', key, last, 'ENTRIESADDED', added)
  else
    redis.call('XSETID', key, last)
  end
end

-- The lines of an M event's d without the one stamped `stamp` (nil when
-- it had none; '' when it was the only one).
local function without_line(d, stamp)
  local head = stamp .. ' '
  local kept, found = {}, false
  for line in string.gmatch(d .. '\n', '([^\n]*)\n') do
    if not found and string.sub(line, 1, #head) == head then
      found = true
    else
      kept[#kept + 1] = line
    end
  end
  if not found then return nil end
  return table.concat(kept, '\n')
end

-- Put an M event's d in a copy of its fields (nil when it is empty).
local function with_d(fields, d)
  if d == '' then return nil end
  local copy = {}
  for i = 1, #fields, 2 do
    copy[i] = fields[i]
    if fields[i] == 'd' then copy[i + 1] = d else copy[i + 1] = fields[i + 1] end
  end
  return copy
end

-- Whether an event is an M event of the room (lower-case).
local function message_event(fields, room)
  if field(fields, 'k') ~= 'M' then return false end
  local r = field(fields, 'r')
  return r ~= nil and string.lower(r) == room
end
