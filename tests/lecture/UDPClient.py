from socket import *
import os
# like the lecture, but the server can be changed without editing the file
serverName = os.environ.get('SERVER_NAME', 'server')
serverPort = int(os.environ.get('SERVER_PORT', 12000))
clientSocket = socket(AF_INET, SOCK_DGRAM)
message = input('Input lowercase sentence:')
clientSocket.sendto(message.encode(), (serverName, serverPort))
modifiedMessage, serverAddress = clientSocket.recvfrom(2048)
print(modifiedMessage.decode())
clientSocket.close()
