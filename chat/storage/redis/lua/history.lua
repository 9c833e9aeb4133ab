-- ARGV: a history stream (a room's or a conversation copy's, without the
-- prefix), a stamp ('' for now), a count, a slack in ms.  Up to count
-- entries stamped before the stamp, newest first, as {t, u, m} each,
-- without reading the stream from its end.  An entry's ID is its stamp's
-- milliseconds (stamps.lua), so those before the stamp's are the ones
-- stamped before it.  Room history stored before IDs were made so has
-- IDs from Redis's clock, a little after their stamps: those stamped
-- before the stamp but added at or after its millisecond lie within the
-- slack above it, and are looked for there, up to the first entry whose
-- ID is its stamp.
local prefix = '{prefix}'
local key, before, count = prefix .. ARGV[1], ARGV[2], tonumber(ARGV[3])

local function message(entry)
  local fields, t, u, m = entry[2], '', '', ''
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 't' then t = fields[i + 1]
    elseif name == 'u' then u = fields[i + 1]
    elseif name == 'm' then m = fields[i + 1] end
  end
  return {t, u, m}
end

local found = {}
local top = '+'
if before ~= '' then
  local at = stamp_ms(before)
  top = string.format('%d', at - 1)
  -- Oldest first, each stamped before `before`: the entries added late.
  local late = {}
  local from, to = string.format('%d', at), string.format('%d', at + tonumber(ARGV[4]))
  local done = false
  while not done do
    local batch = redis.call('XRANGE', key, from, to, 'COUNT', 64)
    for _, entry in ipairs(batch) do
      local m = message(entry)
      local id = entry[1]
      if string.sub(id, 1, string.find(id, '-', 1, true) - 1)
          == string.format('%d', stamp_ms(m[1])) then
        done = true
        break
      end
      if m[1] < before then late[#late + 1] = m end
    end
    if #batch < 64 then
      done = true
    else
      local id = batch[#batch][1]
      local dash = string.find(id, '-', 1, true)
      from = string.sub(id, 1, dash) .. string.format('%d', tonumber(string.sub(id, dash + 1)) + 1)
    end
  end
  for i = #late, math.max(1, #late - count + 1), -1 do found[#found + 1] = late[i] end
end
if #found < count then
  for _, entry in ipairs(redis.call('XREVRANGE', key, top, '-', 'COUNT', count - #found)) do
    found[#found + 1] = message(entry)
  end
end
return found
