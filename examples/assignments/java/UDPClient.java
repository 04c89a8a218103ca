// UDP client: sends a line to HOST PORT and prints the reply; a datagram or its reply may
// be lost, so it waits one second and sends again, up to ten times.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;

public class UDPClient {
    public static void main(String[] args) throws Exception {
        InetAddress host = InetAddress.getByName(args[0]);
        int port = Integer.parseInt(args[1]);
        System.out.print("Input lowercase sentence: ");
        System.out.flush();
        String line = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        byte[] data = (line == null ? "" : line).getBytes(StandardCharsets.UTF_8);
        try (DatagramSocket sock = new DatagramSocket()) {
            sock.setSoTimeout(1000);
            byte[] buf = new byte[2048];
            for (int attempt = 0; attempt < 10; attempt++) {
                sock.send(new DatagramPacket(data, data.length, host, port));
                DatagramPacket reply = new DatagramPacket(buf, buf.length);
                try {
                    sock.receive(reply);
                } catch (SocketTimeoutException e) {
                    continue;
                }
                System.out.println("From Server: "
                        + new String(reply.getData(), 0, reply.getLength(), StandardCharsets.UTF_8));
                return;
            }
            System.err.println("no reply after 10 tries");
            System.exit(1);
        }
    }
}
