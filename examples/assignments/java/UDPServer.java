// UDP uppercase server: every datagram goes back to its sender in upper case.
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.nio.charset.StandardCharsets;

public class UDPServer {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        try (DatagramSocket sock = new DatagramSocket(port)) {
            System.out.println("The server is ready to receive");
            byte[] buf = new byte[2048];
            while (true) {
                DatagramPacket packet = new DatagramPacket(buf, buf.length);
                sock.receive(packet);
                String text = new String(packet.getData(), 0, packet.getLength(), StandardCharsets.UTF_8);
                byte[] reply = text.toUpperCase().getBytes(StandardCharsets.UTF_8);
                sock.send(new DatagramPacket(reply, reply.length, packet.getSocketAddress()));
            }
        }
    }
}
