-- ARGV: a history stream (a room's or a conversation copy's, without the
-- prefix), a stamp ('' for now), a count, a slack in ms.  Up to count
-- entries stamped before the stamp, newest first, as {t, u, m} each,
-- without reading the stream from its end: an entry's ID is its stamp's
-- milliseconds or a little later (stamps.lua), so entries stamped before
-- it have IDs before its milliseconds plus the slack, and those in the
-- slack are filtered by stamp.
local prefix = '{prefix}'
local key, before, count = prefix .. ARGV[1], ARGV[2], tonumber(ARGV[3])
local top = '+'
if before ~= '' then top = string.format('%d', stamp_ms(before) + tonumber(ARGV[4])) end
local found = {}
while #found < count do
  local want = count - #found + 16
  local batch = redis.call('XREVRANGE', key, top, '-', 'COUNT', want)
  for _, entry in ipairs(batch) do
    local fields, t, u, m = entry[2], '', '', ''
    for i = 1, #fields, 2 do
      local name = fields[i]
      if name == 't' then t = fields[i + 1]
      elseif name == 'u' then u = fields[i + 1]
      elseif name == 'm' then m = fields[i + 1] end
    end
    if before == '' or t < before then
      found[#found + 1] = {t, u, m}
      if #found == count then break end
    end
  end
  if #batch < want then break end
  top = '(' .. batch[#batch][1]
end
return found
