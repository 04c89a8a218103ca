from socket import *
import os
serverPort = int(os.environ.get('SERVER_PORT', 12000))
serverSocket = socket(AF_INET, SOCK_STREAM)
serverSocket.bind(('', serverPort))
serverSocket.listen(1)
print('The server is ready to receive')
while True:
    connectionSocket, addr = serverSocket.accept()
    sentence = connectionSocket.recv(1024).decode()
    capitalizedSentence = sentence  # the bug: forgot .upper()
    connectionSocket.send(capitalizedSentence.encode())
    connectionSocket.close()
