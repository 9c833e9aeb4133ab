-- ARGV: lower-case room, stamp, the history slack in ms.  The room's
-- message stamped so, as {t, u, m}, or an empty list.
local entry = find_message(prefix .. 'history:' .. ARGV[1], ARGV[2], tonumber(ARGV[3]))
if not entry then return {} end
local fields = entry[2]
return {field(fields, 't'), field(fields, 'u') or '', field(fields, 'm') or ''}
