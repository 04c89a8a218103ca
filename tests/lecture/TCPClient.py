from socket import *
import os
# like the lecture, but the server can be changed without editing the file
serverName = os.environ.get('SERVER_NAME', 'server')
serverPort = int(os.environ.get('SERVER_PORT', 12000))
clientSocket = socket(AF_INET, SOCK_STREAM)
clientSocket.connect((serverName, serverPort))
sentence = input('Input lowercase sentence:')
clientSocket.send(sentence.encode())
modifiedSentence = clientSocket.recv(1024)
print('From Server: ', modifiedSentence.decode())
clientSocket.close()
