-- Every account's name as registered (the part of its value before ":").
local names = {}
for i, value in ipairs(redis.call('HVALS', prefix .. 'users')) do
  names[i] = string.sub(value, 1, string.find(value, ':', 1, true) - 1)
end
return names
