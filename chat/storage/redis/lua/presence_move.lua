-- ARGV: process id, field, +1 or -1, timestamp.
change(prefix .. 'proc:' .. ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
return 1
