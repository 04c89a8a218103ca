// TCP client: reads a line, sends it to HOST PORT, prints the reply.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

public class TCPClient {
    public static void main(String[] args) throws Exception {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        System.out.print("Input lowercase sentence: ");
        System.out.flush();
        String line = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        if (line == null) line = "";
        try (Socket sock = new Socket(host, port)) {
            sock.getOutputStream().write(line.getBytes(StandardCharsets.UTF_8));
            byte[] buf = new byte[2048];
            int n = sock.getInputStream().read(buf);
            System.out.println("From Server: " + (n > 0 ? new String(buf, 0, n, StandardCharsets.UTF_8) : ""));
        } catch (java.net.ConnectException e) {
            System.err.println("connect: " + e.getMessage());   // "Connection refused"
            System.exit(1);
        }
    }
}
